package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

const testSecret = "e2e-secret-0123456789abcdef"

// startBerth runs berth in-process with env and returns its base URL and its log; berth stops
// when the test ends.
func startBerth(t *testing.T, env map[string]string) (string, *deployertest.Log) {
	t.Helper()
	url, logs, stop := startBerthStoppable(t, env)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("berth exited with %v", err)
		}
	})
	return url, logs
}

// startBerthStoppable is startBerth with the stop in the test's hands: stop cancels run's
// context, as SIGTERM does, and returns what run returned once it has. Calling it again
// returns the same result.
func startBerthStoppable(t *testing.T, env map[string]string) (string, *deployertest.Log, func() error) {
	t.Helper()
	listening, logs, stop := launchBerth(t, env)
	url := "http://" + regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(listening)[1]
	deployertest.Eventually(t, "/healthz", 10*time.Second, func() bool {
		_, err := deployertest.Get(url + "/healthz")
		return err == nil
	})
	return url, logs, stop
}

// launchBerth runs berth in-process with env over the tests' defaults and waits for its
// "listening" log line, which it returns with the log and stop (see startBerthStoppable).
func launchBerth(t *testing.T, env map[string]string) (listening string, logs *deployertest.Log, stop func() error) {
	t.Helper()
	// XDG_STATE_HOME: STATE_DIR's default is a folder of the test's own unless the test sets one.
	base := map[string]string{"OWNER": "acme", "SECRET": testSecret, "LISTEN_ADDR": "127.0.0.1:0", "LOG_LEVEL": "debug", "XDG_STATE_HOME": t.TempDir()}
	for k, v := range env {
		base[k] = v
	}
	// Tests share one engine: a berth that discovers every project there would also repair other
	// tests' deploys in flight as a crash's leftovers. Unless the test names its projects (or
	// brings an engine of its own, as the swarm tests do), it serves none.
	if base["PROJECT_DIR"] == "" && base["PROJECTS"] == "" && env["DOCKER_HOST"] == "" {
		base["PROJECTS"] = "no-project-of-this-test"
	}
	getenv, environ := testEnv(base)
	ctx, cancel := context.WithCancel(context.Background())
	logs = &deployertest.Log{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"berth"}, getenv, environ, io.Discard, logs) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	t.Cleanup(func() { _ = stop() }) // a test that gives up before calling stop
	line := regexp.MustCompile(`msg=listening [^\n]*`)
	deployertest.Eventually(t, "berth to listen", 10*time.Second, func() bool {
		listening = line.FindString(logs.String())
		if listening != "" {
			return true
		}
		select {
		case err := <-done:
			done <- nil // for stop, which waits for berth's exit
			t.Fatalf("berth exited before listening: %v\n%s", err, logs.String())
		default:
		}
		return false
	})
	return listening, logs, stop
}

// testEnv is the test process's environment with env laid over it, as run's getenv and
// environ: berth reads it without the process environment changing, so tests that start
// berth with different settings can run side by side.
func testEnv(env map[string]string) (getenv func(string) string, environ []string) {
	m := map[string]string{}
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	for k, v := range env {
		m[k] = v
	}
	for k, v := range m {
		environ = append(environ, k+"="+v)
	}
	slices.Sort(environ)
	return func(k string) string { return m[k] }, environ
}

// dockerHubPayload is the Docker Hub fixture with its tag replaced.
func dockerHubPayload(t *testing.T, tag string) string {
	t.Helper()
	b, err := os.ReadFile("handler/testdata/dockerhub-push.json")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Replace(string(b), `"tag": "1.4.2"`, `"tag": "`+tag+`"`, 1)
}

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// servicePort is the host port published for the container's port 80.
func servicePort(ctx context.Context, c *client.Client, name string) (string, string, error) {
	res, err := c.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil {
		return "", "", err
	}
	for port, bindings := range res.Container.NetworkSettings.Ports {
		if port.Num() == 80 && len(bindings) > 0 {
			return res.Container.ID, bindings[0].HostPort, nil
		}
	}
	return res.Container.ID, "", fmt.Errorf("%s publishes no port 80", name)
}

// upProject pushes version 1 of acme/web under a fresh tag, writes a project named after the
// tag whose compose file is composeFmt with the tag for its %s, and starts it with the compose
// CLI, taking it down when the test ends.
func upProject(t *testing.T, eng *client.Client, compose, prefix, composeFmt string) (tag, project, dir string) {
	t.Helper()
	tag = deployertest.UniqueTag(prefix)
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	project = strings.ReplaceAll(tag, "-", "")
	dir = deployertest.WriteProject(t, project, fmt.Sprintf(composeFmt, tag))
	deployertest.ComposeUp(t, compose, dir)
	return tag, project, dir
}

// redeployProject is the project the end-to-end redeploy tests start with the compose CLI: web,
// on a pushed version 1 with a marker file in its volume, and other, which no push touches.
type redeployProject struct {
	tag, project, dir  string
	webName, otherName string
	web, other         client.ContainerInspectResult // as compose made them
}

func upRedeployProject(t *testing.T, eng *client.Client, compose, prefix string) redeployProject {
	t.Helper()
	var p redeployProject
	p.tag, p.project, p.dir = upProject(t, eng, compose, prefix, `services:
  web:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
    volumes: ["data:/data"]
  other:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
volumes:
  data: {}
`)
	deployertest.Compose(t, compose, p.dir, "exec", "-T", "web", "sh", "-c", "echo kept > /data/marker")
	p.webName, p.otherName = p.project+"-web-1", p.project+"-other-1"
	var err error
	if p.web, err = eng.ContainerInspect(context.Background(), p.webName, client.ContainerInspectOptions{}); err != nil {
		t.Fatal(err)
	}
	if p.other, err = eng.ContainerInspect(context.Background(), p.otherName, client.ContainerInspectOptions{}); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDockerHubPushRedeploysService(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	p := upRedeployProject(t, eng, compose, "e2e")
	tag, project, dir, webName := p.tag, p.project, p.dir, p.webName

	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": dir})
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	start := time.Now()
	status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag))
	if status != http.StatusAccepted || !strings.Contains(body, project+"/web") {
		t.Fatalf("webhook answered %d %s, want 202 naming %s/web", status, body, project)
	}
	var got string
	deployertest.Eventually(t, "the new version to answer", 60*time.Second, func() bool {
		_, port, err := servicePort(ctx, eng, webName)
		if err != nil || port == "" {
			return false
		}
		got, _ = deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 2"
	})
	t.Logf("webhook → new version answering: %s", time.Since(start))

	p.checkRedeployedLikeCompose(t, eng, compose)
	if strings.Contains(logs.String(), testSecret) {
		t.Error("the secret appears in berth's log")
	}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		if strings.Contains(sc.Text(), "level=ERROR") {
			t.Errorf("error logged: %s", sc.Text())
		}
	}
}

// checkRedeployedLikeCompose asserts what a user sees after berth redeployed web: a new
// container with compose's name and labels (a new image label, the replace label), the old one
// gone, the named volume's data kept, service other untouched, and a later `docker compose up -d`
// changing nothing.
func (p redeployProject) checkRedeployedLikeCompose(t *testing.T, eng *client.Client, compose string) {
	t.Helper()
	ctx := context.Background()
	dir, webName, otherName, before, other := p.dir, p.webName, p.otherName, p.web, p.other
	after, err := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.Container.ID == before.Container.ID {
		t.Fatal("web was not recreated")
	}
	// The old container stays, stopped, until the new one has passed the health gate.
	deployertest.Eventually(t, "the old web container to be removed", 30*time.Second, func() bool {
		_, err := eng.ContainerInspect(ctx, before.Container.ID, client.ContainerInspectOptions{})
		return err != nil
	})
	for _, k := range []string{"com.docker.compose.project", "com.docker.compose.service", "com.docker.compose.container-number",
		"com.docker.compose.oneoff", "com.docker.compose.config-hash", "com.docker.compose.project.working_dir",
		"com.docker.compose.project.config_files", "com.docker.compose.version", "com.docker.compose.depends_on"} {
		if a, b := after.Container.Config.Labels[k], before.Container.Config.Labels[k]; a != b {
			t.Errorf("label %s = %q after berth, %q from compose", k, a, b)
		}
	}
	if after.Container.Config.Labels["com.docker.compose.image"] == before.Container.Config.Labels["com.docker.compose.image"] {
		t.Error("com.docker.compose.image label still names the old image")
	}
	if after.Container.Name != before.Container.Name {
		t.Errorf("container name %s after berth, %s from compose", after.Container.Name, before.Container.Name)
	}
	if r := after.Container.Config.Labels["com.docker.compose.replace"]; r != "web-1" {
		t.Errorf("com.docker.compose.replace = %q, want web-1", r)
	}
	if out := deployertest.Compose(t, compose, dir, "exec", "-T", "web", "cat", "/data/marker"); strings.TrimSpace(out) != "kept" {
		t.Errorf("named volume data after redeploy = %q, want kept", out)
	}
	if now, err := eng.ContainerInspect(ctx, otherName, client.ContainerInspectOptions{}); err != nil || now.Container.ID != other.Container.ID {
		t.Errorf("service other was touched (err %v)", err)
	}
	// A later `docker compose up -d` must find nothing to change.
	out := deployertest.Compose(t, compose, dir, "up", "-d")
	if now, _ := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{}); now.Container.ID != after.Container.ID {
		t.Errorf("docker compose up -d recreated berth's container:\n%s", out)
	}
}

// startRegistry runs a second distribution registry on addr storing into dir, notifying
// notifyURL with a bearer token when it is set, and stops it when the test ends. The registry
// reads every REGISTRY_* variable as configuration, so it gets a clean environment.
func startRegistry(t *testing.T, dir, addr, notifyURL, token string) (stop func()) {
	t.Helper()
	if _, err := exec.LookPath("docker-registry"); err != nil {
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal("docker-registry is not installed")
		}
		t.Skip("docker-registry is not installed")
	}
	cfg := fmt.Sprintf("version: 0.1\nlog: {level: info}\nstorage: {filesystem: {rootdirectory: %s}}\nhttp: {addr: %s}\n", filepath.Join(dir, "data"), addr)
	if notifyURL != "" {
		cfg += fmt.Sprintf(`notifications:
  endpoints:
    - name: berth
      url: %s
      headers: {Authorization: [Bearer %s]}
      timeout: 2s
      threshold: 5
      backoff: 1s
`, notifyURL, token)
	}
	path := filepath.Join(dir, fmt.Sprintf("config-%d.yml", time.Now().UnixNano()))
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(path + ".log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", path)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			logf.Close()
		}
	}
	t.Cleanup(stop)
	deployertest.Eventually(t, "the registry to answer", 10*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return stop
}

// freeAddr is a loopback address nothing listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// getManifest fetches repo's manifest ref from registry as an image manifest, Docker's or OCI's
// (what Engine 29 pushes).
func getManifest(t *testing.T, registry, repo, ref string) (body []byte, digest, mediaType string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+registry+"/v2/"+repo+"/manifests/"+ref, nil)
	req.Header.Set("Accept", "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ = io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET manifest %s:%s: %s", repo, ref, resp.Status)
	}
	return body, resp.Header.Get("Docker-Content-Digest"), resp.Header.Get("Content-Type")
}

// putManifest uploads body as repo's manifest ref (a tag or a digest) and returns its digest.
func putManifest(t *testing.T, registry, repo, ref, mediaType string, body []byte) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "http://"+registry+"/v2/"+repo+"/manifests/"+ref, bytes.NewReader(body))
	req.Header.Set("Content-Type", mediaType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest %s: %s", ref, resp.Status)
	}
	return resp.Header.Get("Docker-Content-Digest")
}

// putUntaggedManifest re-uploads repo:tag's manifest by its digest alone, as buildx does for
// the children of a multi-arch index: the registry reports a manifest push with no tag.
func putUntaggedManifest(t *testing.T, registry, repo, tag string) {
	t.Helper()
	body, digest, mediaType := getManifest(t, registry, repo, tag)
	putManifest(t, registry, repo, digest, mediaType, body)
}

// TestRegistryNotificationRedeploysPinnedDigest: a registry configured to notify berth, and a
// push to it alone redeploys the service on exactly the pushed digest; an untagged manifest
// push is acknowledged and deploys nothing.
func TestRegistryNotificationRedeploysPinnedDigest(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	const token = "registry-token-0123456789"
	regDir, reg := t.TempDir(), freeAddr(t)
	tag := deployertest.UniqueTag("notify")

	// Version 1 goes in before the registry notifies anyone, and compose runs it.
	stop := startRegistry(t, regDir, reg, "", "")
	deployertest.PushHTTPImageTo(t, eng, reg, "acme/web", tag, "version 1")
	stop()
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf(`services:
  web:
    image: %s/acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
`, reg, tag))
	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": dir, "DISTRIBUTION_TOKEN": token})
	startRegistry(t, regDir, reg, url+"/webhook", token)
	deployertest.ComposeUp(t, compose, dir)
	webName := project + "-web-1"
	before, err := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}

	putUntaggedManifest(t, reg, "acme/web", tag)
	deployertest.Eventually(t, "berth to acknowledge the untagged push", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "1 untagged manifests")
	})
	if now, _ := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{}); now.Container.ID != before.Container.ID {
		t.Fatal("an untagged manifest push redeployed web")
	}

	deployertest.PushHTTPImageTo(t, eng, reg, "acme/web", tag, "version 2")
	pushed := deployertest.ManifestDigest(t, reg, "acme/web", tag)
	deployertest.Eventually(t, "version 2 to answer", 60*time.Second, func() bool {
		_, port, err := servicePort(ctx, eng, webName)
		if err != nil || port == "" {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 2"
	})
	after, err := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	img, err := eng.ImageInspect(ctx, after.Container.Image)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoDigests, reg+"/acme/web@"+pushed) {
		t.Errorf("web runs %s with repo digests %v, want the pushed %s", after.Container.Image, img.RepoDigests, pushed)
	}
	if !strings.Contains(logs.String(), "digest="+pushed) {
		t.Errorf("berth's log never names the pushed digest %s", pushed)
	}
	if strings.Contains(logs.String(), "webhook refused") || strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("berth refused a notification or logged an error:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), token) {
		t.Error("the registry token appears in berth's log")
	}
	out := deployertest.Compose(t, compose, dir, "up", "-d")
	if now, _ := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{}); now.Container.ID != after.Container.ID {
		t.Errorf("docker compose up -d recreated berth's container:\n%s", out)
	}

	// A multi-arch push: the platform manifest arrives by digest (untagged), then the index
	// by tag. Only the index deploys, once, pinned to the index digest.
	deployertest.PushHTTPImageTo(t, eng, reg, "acme/web", tag+"-amd64", "version 3")
	index := putIndex(t, reg, "acme/web", tag+"-amd64", tag)
	deployertest.Eventually(t, "version 3 to answer", 60*time.Second, func() bool {
		_, port, err := servicePort(ctx, eng, webName)
		if err != nil || port == "" {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 3"
	})
	if n := strings.Count(logs.String(), "digest="+index); n != 1 {
		t.Errorf("the index push was accepted %d times, want once", n)
	}
	last, err := eng.ContainerInspect(ctx, webName, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img, err := eng.ImageInspect(ctx, last.Container.Image); err != nil || !slices.Contains(img.RepoDigests, reg+"/acme/web@"+index) {
		t.Errorf("web runs %s with repo digests %v (%v), want the index %s", last.Container.Image, img.RepoDigests, err, index)
	}
}

// putIndex makes a one-platform manifest list of repo:from's manifest, re-uploads that manifest
// by digest alone, and pushes the list as repo:tag, the order buildx pushes a multi-arch image
// in. It returns the list's digest.
func putIndex(t *testing.T, registry, repo, from, tag string) string {
	t.Helper()
	manifest, child, mediaType := getManifest(t, registry, repo, from)
	putManifest(t, registry, repo, child, mediaType, manifest)
	listType := "application/vnd.docker.distribution.manifest.list.v2+json"
	if mediaType == "application/vnd.oci.image.manifest.v1+json" {
		listType = "application/vnd.oci.image.index.v1+json"
	}
	list := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,`+
		`"manifests":[{"mediaType":%q,"size":%d,"digest":%q,"platform":{"architecture":%q,"os":"linux"}}]}`,
		listType, mediaType, len(manifest), child, runtime.GOARCH)
	return putManifest(t, registry, repo, tag, listType, []byte(list))
}
