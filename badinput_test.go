package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// buildLocalImage builds an HTTP image answering body as ref on the engine only: the registry
// never sees it, so pulling ref fails.
func buildLocalImage(t *testing.T, eng *client.Client, ref, body string) {
	t.Helper()
	dockerfile := "FROM busybox:1\nRUN mkdir -p /www && printf '%s' '" + body + "' > /www/index.html\n" +
		`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
	_, _ = tw.Write([]byte(dockerfile))
	_ = tw.Close()
	res, err := eng.ImageBuild(context.Background(), &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	out, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if bytes.Contains(out, []byte(`"error"`)) {
		t.Fatalf("build %s: %s", ref, out)
	}
	t.Cleanup(func() {
		_, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
}

// answers is what the service's published port 80 serves now, and the container's id.
func answers(ctx context.Context, eng *client.Client, name string) (id, body string) {
	id, port, err := servicePort(ctx, eng, name)
	if err != nil || port == "" {
		return id, ""
	}
	body, _ = deployertest.Get("http://127.0.0.1:" + port + "/")
	return id, body
}

// TestBadInputsChangeNothing sends berth, at debug level, every kind of bad webhook and a push
// of a tag the registry does not have: each gets its answer, nothing running is replaced, the
// failed deploy is logged, and the secret appears in no log line.
func TestBadInputsChangeNothing(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag := deployertest.UniqueTag("bad")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	// ghost runs a tag that exists on this engine but not in the registry.
	ghostTag := tag + "-local"
	buildLocalImage(t, eng, "acme/web:"+ghostTag, "ghost 1")
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf(`services:
  web:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
  ghost:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
`, tag, ghostTag))
	deployertest.ComposeUp(t, compose, dir)
	webName, ghostName := project+"-web-1", project+"-ghost-1"
	webID, got := answers(ctx, eng, webName)
	ghostID, gotGhost := answers(ctx, eng, ghostName)
	if got != "version 1" || gotGhost != "ghost 1" {
		t.Fatalf("before: web answers %q, ghost %q", got, gotGhost)
	}

	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": dir, "LOG_LEVEL": "debug"})
	// A version 2 is in the registry, so a bad request that deployed anyway would show.
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	foreign := strings.ReplaceAll(string(mustRead(t, "handler/testdata/dockerhub-push-foreign-namespace.json")), `"tag": "1.4.2"`, `"tag": "`+tag+`"`)
	huge := strings.Replace(dockerHubPayload(t, tag), `"images": []`, `"images": ["`+strings.Repeat("x", 1<<20)+`"]`, 1)
	for _, tc := range []struct {
		name, query, body string
		status            int
		says              string
	}{
		{"wrong secret", "?secret=" + testSecret + "x", dockerHubPayload(t, tag), http.StatusUnauthorized, `"unauthorized"`},
		{"no secret", "", dockerHubPayload(t, tag), http.StatusUnauthorized, `"unauthorized"`},
		{"wrong owner", "?secret=" + testSecret, foreign, http.StatusForbidden, "set OWNER=acme,evil"},
		{"unknown tag", "?secret=" + testSecret, dockerHubPayload(t, tag+"-nobody-runs-it"), http.StatusOK, "no service in the compose project runs"},
		{"garbage body", "?secret=" + testSecret, "\x00\xff garbage {", http.StatusBadRequest, "not a JSON object"},
		{"incomplete body", "?secret=" + testSecret, `{"push_data":{"tag":"` + tag + `"}}`, http.StatusBadRequest, "lacks repository.repo_name"},
		{"huge body", "?secret=" + testSecret, huge, http.StatusRequestEntityTooLarge, "larger than 1 MiB"},
	} {
		status, body := post(t, url+"/webhook"+tc.query, tc.body)
		if status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("%s: answered %d %s, want %d saying %s", tc.name, status, body, tc.status, tc.says)
		}
	}

	// ghost's tag is not in the registry: accepted, then the pull fails and ghost keeps serving.
	status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, ghostTag))
	if status != http.StatusAccepted || !strings.Contains(body, project+"/ghost") {
		t.Fatalf("push of the unpublished tag answered %d %s, want 202 naming %s/ghost", status, body, project)
	}
	deployertest.Eventually(t, "the failed deploy to be logged", 60*time.Second, func() bool {
		return strings.Contains(logs.String(), `msg="deploy failed"`)
	})
	failed := ""
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, `msg="deploy failed"`) {
			failed = line
		}
	}
	if !strings.Contains(failed, "service=ghost") || !strings.Contains(failed, "pull") || !strings.Contains(failed, "level=ERROR") {
		t.Errorf("the failed deploy is logged as %q, want an ERROR naming ghost and the pull", failed)
	}
	if id, got := answers(ctx, eng, ghostName); id != ghostID || got != "ghost 1" {
		t.Errorf("after the failed pull ghost is %s answering %q, want the old %s answering ghost 1", id, got, ghostID)
	}
	if id, got := answers(ctx, eng, webName); id != webID || got != "version 1" {
		t.Errorf("after the bad requests web is %s answering %q, want the old %s answering version 1", id, got, webID)
	}
	if n := strings.Count(logs.String(), `msg="deploy queued"`); n != 1 {
		t.Errorf("%d deploys queued, want only ghost's", n)
	}
	assertNoSecret(t, logs.String())
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertNoSecret fails the test if any log line holds the secret, or its first 12 characters.
func assertNoSecret(t *testing.T, log string) {
	t.Helper()
	for i, line := range strings.Split(log, "\n") {
		if strings.Contains(line, testSecret) || strings.Contains(line, testSecret[:12]) {
			t.Errorf("log line %d holds the secret: %s", i+1, line)
		}
	}
}

// TestShutdownLetsDeployFinish cancels berth's context, as SIGTERM does, while a deploy is in
// its stop step: berth stops taking requests but returns only after the deploy is done, and
// the service ends up on the new version.
func TestShutdownLetsDeployFinish(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	// No init: httpd as PID 1 ignores SIGTERM, so the stop step lasts the grace period and the
	// deploy is surely in flight when berth is told to stop.
	tag, project, dir := upProject(t, eng, compose, "term", `services:
  web:
    image: acme/web:%s
    stop_grace_period: 3s
    ports: ["127.0.0.1::80"]
`)

	url, logs, stop := startBerthStoppable(t, map[string]string{"PROJECT_DIR": dir})
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s, want 202", status, body)
	}
	deployertest.Eventually(t, "the deploy to reach its stop step", 60*time.Second, func() bool {
		return strings.Contains(logs.String(), "msg=stop ")
	})
	if err := stop(); err != nil {
		t.Fatalf("berth returned %v", err)
	}
	out := logs.String()
	if !strings.Contains(out, `msg="deploy done"`) || strings.Contains(out, "abandoned") {
		t.Fatalf("berth returned before the deploy finished:\n%s", out)
	}
	deployertest.Eventually(t, "version 2 to answer after the shutdown", 30*time.Second, func() bool {
		_, got := answers(ctx, eng, project+"-web-1")
		return got == "version 2"
	})
	if _, err := deployertest.Get(url + "/healthz"); err == nil {
		t.Error("berth still answers after it returned")
	}
}
