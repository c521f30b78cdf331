package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// buildBerthImage builds the repository's Dockerfile as the README's first command does: the
// compose CLI's build of docker-compose.yml, in a copy of the repository (copyRepository), and
// tags it with a name no other test uses. The same context makes the same layers, so this
// build and the first command's in TestREADMEFirstRun share the builder's cache.
func buildBerthImage(t *testing.T, eng *client.Client) string {
	t.Helper()
	ref := "berth-test:" + deployertest.UniqueTag("img")
	cmd := exec.Command(deployertest.ComposeCLI(t, "v5.6.0"), "build", "socket-proxy")
	cmd.Dir = copyRepository(t)
	// Only the build runs; the variables the file requires for its services just need a value.
	cmd.Env = append(os.Environ(), "BERTH_IMAGE="+ref, "OWNER=acme", "SECRET="+testSecret, "DOCKER_GID=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build berth's image: %v (does `FROM golang:1.26` resolve? run ../shared/sandbox/engine seed-golang)\n%s", err, out)
	}
	t.Cleanup(func() {
		// The final image only: the build stage's layers stay behind as the next run's cache.
		_, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	if img, err := eng.ImageInspect(context.Background(), ref); err == nil {
		t.Logf("berth image %s: %.1f MB", ref, float64(img.Size)/1e6)
	}
	return ref
}

// TestBerthContainerRedeploysService runs berth the way users do: the repository's
// docker-compose.yml (berth and its socket proxy) on an image built from the Dockerfile, with
// the socket and the projects mounted. A Docker Hub webhook to that container redeploys a
// compose service on the engine.
func TestBerthContainerRedeploysService(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skipf("berth's container mounts the engine's socket; DOCKER_HOST=%q is not a unix socket", os.Getenv("DOCKER_HOST"))
	}
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	image := buildBerthImage(t, eng)

	p := upRedeployProject(t, eng, compose, "ctr")
	tag, project, webName := p.tag, p.project, p.webName
	// berth runs as uid 65532 and reads the project through a read-only bind mount.
	root := filepath.Dir(p.dir)
	for _, d := range []string{filepath.Dir(root), root, p.dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// berth's own project, from the repository's compose file, under a name of its own.
	berthProject := "berth" + project
	for k, v := range map[string]string{
		"OWNER": "acme", "SECRET": testSecret, "DOCKER_GID": fmt.Sprint(st.Gid), "DOCKER_SOCKET": sock,
		"BERTH_IMAGE": image, "BERTH_BIND": "127.0.0.1", "BERTH_PORT": "",
		"PROJECTS_ROOT": root, "PROJECTS": project, "PROJECT_DIR": "", "SKIP_PROJECTS": "",
	} {
		t.Setenv(k, v)
	}
	repo, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	berthCompose := func(args ...string) string {
		t.Helper()
		return deployertest.Compose(t, compose, repo, append([]string{"-p", berthProject, "-f", "docker-compose.yml"}, args...)...)
	}
	berthCompose("up", "-d", "--no-build")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("berth's log:\n%s", berthCompose("logs", "--no-color"))
		}
		berthCompose("down", "-v", "-t", "1")
	})
	addr := strings.TrimSpace(berthCompose("port", "berth", "8080"))
	url := "http://" + addr
	deployertest.Eventually(t, "berth's container to answer /healthz", 60*time.Second, func() bool {
		_, err := deployertest.Get(url + "/healthz")
		return err == nil
	})

	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	start := time.Now()
	status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag))
	if status != http.StatusAccepted || !strings.Contains(body, project+"/web") {
		t.Fatalf("webhook answered %d %s, want 202 naming %s/web", status, body, project)
	}
	deployertest.Eventually(t, "the new version to answer", 60*time.Second, func() bool {
		_, port, err := servicePort(ctx, eng, webName)
		if err != nil || port == "" {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 2"
	})
	t.Logf("webhook → new version answering (berth in a container): %s", time.Since(start))

	p.checkRedeployedLikeCompose(t, eng, compose)
	deployertest.Eventually(t, "the deploy to be logged done", 30*time.Second, func() bool {
		return strings.Contains(berthCompose("logs", "--no-color", "berth"), `msg="deploy done"`)
	})
	logs := berthCompose("logs", "--no-color")
	if strings.Contains(logs, testSecret) {
		t.Error("the secret appears in berth's container log")
	}
	if strings.Contains(logs, "level=ERROR") || strings.Contains(logs, "socket proxy refused") {
		t.Errorf("berth or its proxy logged an error or a refusal:\n%s", logs)
	}
}
