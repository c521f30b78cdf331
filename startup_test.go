package main

import (
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/internal/socketproxy"
)

// TestMisconfigurationStopsAtStart runs `berth serve` with each misconfiguration a first run
// meets: it exits non-zero, before listening, with one line naming the fix.
func TestMisconfigurationStopsAtStart(t *testing.T) {
	deployertest.Engine(t) // with no engine at all berth listens and waits for one (TestEngineUnreachableThenBack)
	bin := buildBerth(t)
	broken := deployertest.WriteProject(t, "startupbroken", "services: [not, a, map\n")
	missingVar := deployertest.WriteProject(t, "startupvar", "services:\n  web:\n    image: acme/web:${TAG:?set TAG in .env}\n")
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"OWNER unset", map[string]string{"OWNER": ""}, "berth: OWNER is not set; set it to the registry namespace(s)"},
		{"OWNER trailing comma", map[string]string{"OWNER": "acme,"}, "OWNER=acme, has an empty entry"},
		{"OWNER with slash", map[string]string{"OWNER": "acme/web"}, "contains a slash"},
		{"OWNER uppercase", map[string]string{"OWNER": "Acme"}, "is not a registry namespace"},
		{"PROJECT_DIR missing", map[string]string{"PROJECT_DIR": "/nonexistent"}, "PROJECT_DIR=/nonexistent does not exist as berth sees it"},
		{"project does not parse", map[string]string{"PROJECT_DIR": broken}, "does not load"},
		{"project misses a variable", map[string]string{"PROJECT_DIR": missingVar}, "required variable TAG is missing a value: set TAG in .env"},
	} {
		env := []string{"OWNER=acme", "SECRET=" + testSecret, "LISTEN_ADDR=127.0.0.1:0", "STATE_DIR=" + t.TempDir(),
			"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"), "DOCKER_CONFIG=" + filepath.Join(t.TempDir(), "none")}
		for k, v := range c.env {
			env = append(env, k+"="+v)
		}
		code, _, stderr := runBounded(t, bin, env, "serve")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code == 0 || !strings.HasPrefix(last, "berth: ") || !strings.Contains(last, c.want) || strings.Contains(stderr, "listening") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant non-zero, no listening, and a last line with %q", c.name, code, stderr, c.want)
		}
	}
}

// TestEngineUnreachableThenBack starts berth on a socket nothing listens on: it says so at start
// with the likely fix, listens anyway and answers a webhook with a 503 naming that fix. Then a
// proxy to the real engine appears on the socket, and berth serves without a restart.
func TestEngineUnreachableThenBack(t *testing.T) {
	deployertest.Engine(t)
	engineSock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skipf("the stand-in socket proxies to a unix socket; DOCKER_HOST=%q is not one", os.Getenv("DOCKER_HOST"))
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	start := time.Now()
	listening, logs, _ := launchBerth(t, map[string]string{"DOCKER_HOST": "unix://" + sock, "PROJECTS": "none"})
	t.Logf("start to listening with the engine down: %s", time.Since(start).Round(time.Millisecond))
	if !strings.Contains(logs.String(), "engine unreachable") || !strings.Contains(logs.String(), "is the socket mounted") {
		t.Errorf("berth's start log does not say the engine is unreachable and why:\n%s", logs.String())
	}
	url := "http://" + regexp.MustCompile(`addr=(\S+)`).FindStringSubmatch(listening)[1]
	tag := deployertest.UniqueTag("back")
	payload := strings.ReplaceAll(dockerHubPayload(t, tag), "acme/web", "acme/engine-back")
	start = time.Now()
	status, body := post(t, url+"/webhook?secret="+testSecret, payload)
	t.Logf("webhook answered %d with the engine down in %s", status, time.Since(start).Round(time.Millisecond))
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "is the socket mounted") {
		t.Fatalf("webhook with the engine down answered %d %s, want 503 naming the fix", status, body)
	}

	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &http.Server{Handler: socketproxy.New(engineSock, socketproxy.Policy{}, slog.New(slog.DiscardHandler))}
	go func() { _ = proxy.Serve(ln) }()
	t.Cleanup(func() { proxy.Close() })
	deployertest.Eventually(t, "berth to serve once the engine answers", 20*time.Second, func() bool {
		status, body = post(t, url+"/webhook?secret="+testSecret, payload)
		return status != http.StatusServiceUnavailable
	})
	if status != http.StatusOK || !strings.Contains(body, "ignored") {
		t.Errorf("webhook with the engine back answered %d %s, want 200 ignored (no service runs acme/engine-back)", status, body)
	}
}
