package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// startSocketProxy runs `berth socket-proxy` in-process in front of the test engine's socket
// and returns its tcp:// address and its log.
func startSocketProxy(t *testing.T, env map[string]string) (string, *deployertest.Log) {
	t.Helper()
	sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skipf("the socket proxy needs a unix-socket engine; DOCKER_HOST=%q", os.Getenv("DOCKER_HOST"))
	}
	base := map[string]string{"SOCKET_PROXY_LISTEN": "127.0.0.1:0", "SOCKET_PROXY_SOCKET": sock, "LOG_LEVEL": "debug"}
	for k, v := range env {
		base[k] = v
	}
	getenv, environ := testEnv(base)
	ctx, cancel := context.WithCancel(context.Background())
	logs := &deployertest.Log{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"berth", "socket-proxy"}, getenv, environ, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("socket proxy exited with %v", err)
		}
	})
	addr := regexp.MustCompile(`msg="socket proxy listening" addr=(tcp://\S+)`)
	var url string
	deployertest.Eventually(t, "the socket proxy to listen", 10*time.Second, func() bool {
		if m := addr.FindStringSubmatch(logs.String()); m != nil {
			url = m[1]
			return true
		}
		select {
		case err := <-done:
			t.Fatalf("socket proxy exited before listening: %v\n%s", err, logs.String())
		default:
		}
		return false
	})
	return url, logs
}

// TestDeployThroughSocketProxy puts the real filtering proxy between berth and the engine: a
// full deploy goes through it, and the calls berth never makes are refused with a message that
// names the endpoint.
func TestDeployThroughSocketProxy(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag, project, dir := upProject(t, eng, compose, "proxy", `services:
  web:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
    volumes: ["data:/data"]
volumes:
  data: {}
`)
	webName := project + "-web-1"
	before, _, err := servicePort(ctx, eng, webName)
	if err != nil {
		t.Fatal(err)
	}

	proxyAddr, proxyLog := startSocketProxy(t, nil)
	through, err := client.New(client.WithHost(proxyAddr), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer through.Close()

	// What berth never needs is refused, and the Docker client's error says why.
	_, err = through.ExecCreate(ctx, webName, client.ExecCreateOptions{Cmd: []string{"true"}})
	if err == nil || !strings.Contains(err.Error(), "refuses POST /containers/"+webName+"/exec") || !strings.Contains(err.Error(), "SOCKET_PROXY_EXEC=true") {
		t.Errorf("exec through the proxy: %v, want a refusal naming the endpoint and SOCKET_PROXY_EXEC=true", err)
	}
	for _, call := range []struct{ method, path string }{
		{"POST", "/v1.41/build"}, {"GET", "/v1.41/plugins"}, {"POST", "/v1.41/system/prune"}, {"GET", "/v1.41/secrets"},
		{"POST", "/v1.41/containers/prune"}, {"PUT", "/v1.41/containers/" + webName + "/archive?path=/"},
	} {
		req, _ := http.NewRequest(call.method, "http://"+strings.TrimPrefix(proxyAddr, "tcp://")+call.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "berth never uses it") {
			t.Errorf("%s %s through the proxy answered %d %s, want 403", call.method, call.path, resp.StatusCode, body)
		}
	}
	refusedBefore := strings.Count(proxyLog.String(), "socket proxy refused")
	if refusedBefore != 7 {
		t.Errorf("the proxy logged %d refusals, want 7:\n%s", refusedBefore, proxyLog.String())
	}

	// A full deploy through the proxy: berth has no socket, only the proxy's address.
	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": dir, "DOCKER_HOST": proxyAddr})
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s, want 202", status, body)
	}
	deployertest.Eventually(t, "version 2 deployed through the proxy", 60*time.Second, func() bool {
		_, port, err := servicePort(ctx, eng, webName)
		if err != nil || port == "" {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 2"
	})
	if after, _, _ := servicePort(ctx, eng, webName); after == before {
		t.Error("web was not recreated")
	}
	deployertest.Eventually(t, "the deploy to be logged done", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="deploy done"`)
	})
	if n := strings.Count(proxyLog.String(), "socket proxy refused"); n != refusedBefore {
		t.Errorf("the proxy refused %d of berth's calls during the deploy:\n%s", n-refusedBefore, proxyLog.String())
	}
	if out := deployertest.Compose(t, compose, dir, "up", "-d"); strings.Contains(out, "Recreate") {
		t.Errorf("docker compose up -d after the proxied deploy recreated something:\n%s", out)
	}
}

// TestSocketProxyExecWhenEnabled: with SOCKET_PROXY_EXEC=true an exec (an upgraded, hijacked
// connection) passes through the proxy both ways.
func TestSocketProxyExecWhenEnabled(t *testing.T) {
	t.Parallel()
	deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	project := strings.ReplaceAll(deployertest.UniqueTag("proxyexec"), "-", "")
	dir := deployertest.WriteProject(t, project, "services:\n  box:\n    image: busybox:1\n    init: true\n    command: [sleep, '3600']\n")
	deployertest.ComposeUp(t, compose, dir)

	proxyAddr, _ := startSocketProxy(t, map[string]string{"SOCKET_PROXY_EXEC": "true"})
	through, err := client.New(client.WithHost(proxyAddr), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatal(err)
	}
	defer through.Close()
	created, err := through.ExecCreate(ctx, project+"-box-1", client.ExecCreateOptions{
		Cmd: []string{"sh", "-c", "read line; echo got $line"}, AttachStdin: true, AttachStdout: true, TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	att, err := through.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: true})
	if err != nil {
		t.Fatal(err)
	}
	defer att.Close()
	if _, err := att.Conn.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 1)
	go func() { b, _ := io.ReadAll(att.Reader); done <- string(b) }()
	select {
	case out := <-done:
		if !strings.Contains(out, "got hello") {
			t.Errorf("exec through the proxy printed %q, want got hello", out)
		}
	case <-time.After(30 * time.Second): // a safety net against a hung stream, not a timing check
		t.Fatal("exec output never came back through the proxy")
	}
}

// TestReadOnlySocketProxyRefusesDeploy runs berth behind a read-only proxy: the deploy's pull is
// refused, berth's log says by whom and what to change, and the running container is kept.
func TestReadOnlySocketProxyRefusesDeploy(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag, project, dir := upProject(t, eng, compose, "roproxy", `services:
  web:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
`)
	webName := project + "-web-1"
	before, _, err := servicePort(ctx, eng, webName)
	if err != nil {
		t.Fatal(err)
	}

	proxyAddr, _ := startSocketProxy(t, map[string]string{"SOCKET_PROXY_READONLY": "true"})
	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": dir, "DOCKER_HOST": proxyAddr})
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s, want 202", status, body)
	}
	deployertest.Eventually(t, "the deploy to fail", 60*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="deploy failed"`)
	})
	failed := regexp.MustCompile(`msg="deploy failed".*`).FindString(logs.String())
	for _, want := range []string{"berth socket-proxy refuses POST /images/create", "SOCKET_PROXY_READONLY"} {
		if !strings.Contains(failed, want) {
			t.Errorf("berth's deploy error does not say %q:\n%s", want, failed)
		}
	}
	if now, _, err := servicePort(ctx, eng, webName); err != nil || now != before {
		t.Errorf("the running web container was touched by a refused deploy (err %v)", err)
	}
}

// TestSocketProxyContains sends what a leaked berth could try through the real proxy to the
// real engine: an image import by body, and container creates that are privileged, bind the
// host's / or the Docker socket, or share the host's pid namespace. Each is answered 403
// naming what would allow it, and the engine never sees it (no container, no image by that
// name). SOCKET_PROXY_ALLOW lets the one named service's privileged create through.
func TestSocketProxyContains(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	ctx := context.Background()
	project := strings.ReplaceAll(deployertest.UniqueTag("contain"), "-", "")
	proxyAddr, proxyLog := startSocketProxy(t, map[string]string{"SOCKET_PROXY_ALLOW": project + "/monitor:privileged"})
	base := "http://" + strings.TrimPrefix(proxyAddr, "tcp://") + "/v1.41"
	send := func(path, contentType, body string) (int, string) {
		resp, err := http.Post(base+path, contentType, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	create := func(name, service, hostConfig string) string {
		return `{"Image":"busybox:1","Cmd":["true"],"Labels":{"com.docker.compose.project":"` + project +
			`","com.docker.compose.service":"` + service + `"},"HostConfig":` + hostConfig + `}`
	}
	importTag := project + "-imported"
	hostile := []struct {
		name, path, contentType, body, want string
	}{
		{"import by body", "/images/create?repo=" + importTag + "&tag=1", "application/x-www-form-urlencoded", "fromSrc=-", "only a pull"},
		{"privileged", "/containers/create?name=" + project + "-priv", "application/json", create("", "web", `{"Privileged":true}`), "SOCKET_PROXY_ALLOW=" + project + "/web:privileged"},
		{"root bind", "/containers/create?name=" + project + "-root", "application/json", create("", "web", `{"Binds":["/:/host"]}`), project + "/web:host-root"},
		{"socket bind", "/containers/create?name=" + project + "-sock", "application/json", create("", "web", `{"Binds":["/var/run/docker.sock:/var/run/docker.sock"]}`), project + "/web:docker-socket"},
		{"host pid", "/containers/create?name=" + project + "-pid", "application/json", create("", "web", `{"PidMode":"host"}`), project + "/web:host-namespaces"},
	}
	for _, h := range hostile {
		status, body := send(h.path, h.contentType, h.body)
		if status != http.StatusForbidden || !strings.Contains(body, h.want) {
			t.Errorf("%s: %d %s, want 403 naming %q", h.name, status, body, h.want)
		}
	}
	for _, name := range []string{"-priv", "-root", "-sock", "-pid"} {
		if _, err := eng.ContainerInspect(ctx, project+name, client.ContainerInspectOptions{}); err == nil {
			t.Errorf("the engine created %s%s", project, name)
		}
	}
	if _, err := eng.ImageInspect(ctx, importTag+":1"); err == nil {
		t.Errorf("the engine imported %s:1", importTag)
	}
	if n := strings.Count(proxyLog.String(), "socket proxy refused"); n != len(hostile) {
		t.Errorf("the proxy logged %d refusals, want %d:\n%s", n, len(hostile), proxyLog.String())
	}

	// The opt-in: the named service's privileged create reaches the engine.
	name := project + "-monitor-1"
	t.Cleanup(func() { _, _ = eng.ContainerRemove(ctx, name, client.ContainerRemoveOptions{Force: true}) })
	if status, body := send("/containers/create?name="+name, "application/json", create("", "monitor", `{"Privileged":true}`)); status != http.StatusCreated {
		t.Fatalf("the allowed service's privileged create: %d %s, want 201", status, body)
	}
	res, err := eng.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
	if err != nil || !res.Container.HostConfig.Privileged {
		t.Errorf("the allowed privileged container: %v (privileged %v)", err, err == nil && res.Container.HostConfig.Privileged)
	}
}
