package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// cliResult is what one run of the berth binary did.
type cliResult struct {
	code           int
	stdout, stderr string
}

// lastLine is the error line berth ends with when it fails.
func (r cliResult) lastLine() string {
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	return lines[len(lines)-1]
}

// runBerth runs the binary with args and the test engine's environment plus env (a value ""
// removes the variable).
func runBerth(t *testing.T, bin string, env map[string]string, args ...string) cliResult {
	t.Helper()
	cmd := exec.Command(bin, args...)
	// STATE_DIR's default is a folder of the test's own unless the test sets one.
	cmd.Env = append(cmd.Env, "XDG_STATE_HOME="+t.TempDir())
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if _, override := env[k]; !override {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	code := 0
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return cliResult{code, stdout.String(), stderr.String()}
}

// runBerthOnTerminal runs berth with a pseudo-terminal as its stdin, stdout and stderr, and
// returns all it wrote there.
func runBerthOnTerminal(t *testing.T, bin string, env map[string]string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	ptmx, err := pty.Start(cmd)
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	out, _ := io.ReadAll(ptmx) // ends with EIO once berth exits and closes its side
	if err := cmd.Wait(); err != nil {
		t.Errorf("berth %s on a terminal: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestCLI runs the berth binary as a user would: help, errors, check on good and broken
// configurations, deploy end to end (real, dry run, failing) and status against a running berth.
func TestCLI(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	bin := buildBerth(t)
	ctx := context.Background()

	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"deploy", "--help"}, {"status", "-h"}, {"check", "--help"}} {
		r := runBerth(t, bin, nil, args...)
		if r.code != 0 || !strings.Contains(r.stdout, "usage: berth") {
			t.Errorf("berth %s: exit %d, stdout %q", strings.Join(args, " "), r.code, r.stdout)
		}
	}
	if r := runBerth(t, bin, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "berth ") {
		t.Errorf("berth version: exit %d, %q", r.code, r.stdout)
	}

	tag, project, dir := upProject(t, eng, compose, "cli", "services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n")
	broken := deployertest.WriteProject(t, project+"broken", "services: [not, a, map\n")
	env := map[string]string{"OWNER": "acme", "SECRET": testSecret, "PROJECT_DIR": dir, "STATE_DIR": t.TempDir(), "DOCKER_CONFIG": t.TempDir()}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range env {
			m[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	imageOf := func() string {
		res, err := eng.ContainerInspect(ctx, project+"-web-1", client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Container.Image
	}

	// Errors: non-zero exit and one line saying what to fix.
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"unknown command", env, []string{"bogus"}, `unknown command "bogus"`},
		{"deploy without service", env, []string{"deploy"}, "deploy needs exactly one SERVICE"},
		{"bad flag", env, []string{"deploy", "web", "--bogus"}, "flag provided but not defined: -bogus"},
		{"check without OWNER", with("OWNER", ""), []string{"check"}, "OWNER"},
		{"check bad PARALLEL", with("PARALLEL", "many"), []string{"check"}, `PARALLEL="many"`},
		{"check broken project", with("PROJECT_DIR", broken), []string{"check"}, "check found 1 problem(s)"},
		{"check engine down", with("DOCKER_HOST", "unix://"+filepath.Join(t.TempDir(), "none.sock")), []string{"check"}, "check found 1 problem(s)"},
		{"deploy unknown service", env, []string{"deploy", "nothere"}, "no project berth serves has a service nothere"},
		{"status without token", env, []string{"status"}, "API_TOKEN is not set"},
	} {
		r := runBerth(t, bin, c.env, c.args...)
		if r.code == 0 || !strings.HasPrefix(r.lastLine(), "berth: ") || !strings.Contains(r.lastLine(), c.want) {
			t.Errorf("%s: exit %d, last stderr line %q, want non-zero and %q\nstdout: %s", c.name, r.code, r.lastLine(), c.want, r.stdout)
		}
		if c.name == "check broken project" && !strings.Contains(r.stdout, "FAIL project") {
			t.Errorf("check on a broken project printed:\n%s", r.stdout)
		}
		if c.name == "check engine down" && !strings.Contains(r.stdout, "FAIL engine") {
			t.Errorf("check with no engine printed:\n%s", r.stdout)
		}
	}

	// check on the good configuration: everything ok, and what a push would redeploy; nothing changes.
	v1 := imageOf()
	r := runBerth(t, bin, env, "check", "--push", "acme/web:"+tag)
	if r.code != 0 || !strings.Contains(r.stdout, "ok   engine") || !strings.Contains(r.stdout, "ok   project "+project) ||
		!strings.Contains(r.stdout, "would redeploy: "+project+"/web") {
		t.Errorf("berth check: exit %d\nstdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if imageOf() != v1 {
		t.Error("berth check changed the service")
	}

	// deploy: a dry run changes nothing, a real one deploys, a bad digest fails.
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	if r := runBerth(t, bin, with("DRY_RUN", "1"), "deploy", "web"); r.code != 0 || !strings.Contains(r.stdout, project+"/web: would-deploy") {
		t.Errorf("DRY_RUN=1 berth deploy web: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if imageOf() != v1 {
		t.Error("a dry run changed the service")
	}
	// Piped, berth deploy writes each step as a plain line when it ends: no control characters.
	r = runBerth(t, bin, env, "deploy", "web")
	if r.code != 0 || !strings.Contains(r.stdout, project+"/web: deployed") {
		t.Fatalf("berth deploy web: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, project+"/web: pull acme/web:"+tag+" done in ") || !strings.Contains(r.stdout, project+"/web: start "+project+"-web-1 done in ") {
		t.Errorf("piped berth deploy shows no steps:\n%s", r.stdout)
	}
	if i := strings.IndexFunc(r.stdout, func(c rune) bool { return c < ' ' && c != '\n' }); i >= 0 {
		t.Errorf("piped berth deploy wrote control character %q: %q", r.stdout[i], r.stdout)
	}
	v2 := imageOf()
	if v2 == v1 {
		t.Error("berth deploy web left the old image running")
	}
	// On a terminal, the running step is rewritten in place, the pull with its layers.
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 3")
	if out := runBerthOnTerminal(t, bin, env, "deploy", "web"); !strings.Contains(out, "\r\x1b[K"+project+"/web: pull acme/web:"+tag) ||
		!strings.Contains(out, " layers") || !strings.Contains(out, project+"/web: deployed") {
		t.Errorf("berth deploy on a terminal showed %q", out)
	}
	v2 = imageOf()
	bad := "acme/web:" + tag + "@sha256:" + strings.Repeat("0", 64)
	if r := runBerth(t, bin, env, "deploy", project+"/web", "--image", bad); r.code == 0 || !strings.Contains(r.lastLine(), "failed") {
		t.Errorf("berth deploy --image %s: exit %d, last line %q", bad, r.code, r.lastLine())
	}
	if imageOf() != v2 {
		t.Error("a failed deploy changed the running service")
	}

	// status, from a running berth's API; its history holds the CLI's deploys.
	const deployToken = "ci-deploy-token-0123456789"
	url, _ := startBerth(t, map[string]string{"PROJECT_DIR": dir, "API_TOKEN": testToken, "STATE_DIR": env["STATE_DIR"], "DEPLOY_TOKEN": deployToken})
	r = runBerth(t, bin, with("API_TOKEN", testToken, "BERTH_URL", url), "status")
	if r.code != 0 || !strings.Contains(r.stdout, project+"/web") || !strings.Contains(r.stdout, project+"-web-1 running") {
		t.Errorf("berth status: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	var deploys struct {
		Deploys []struct{ Outcome, Source string }
	}
	apiGet(t, url+"/api/deploys", testToken, &deploys)
	if len(deploys.Deploys) != 4 || deploys.Deploys[0].Outcome != "failed" || deploys.Deploys[1].Outcome != "deployed" ||
		deploys.Deploys[2].Outcome != "deployed" || deploys.Deploys[3].Outcome != "would-deploy" || deploys.Deploys[0].Source != "cli" {
		t.Errorf("history after the CLI deploys = %+v, want failed, deployed (terminal), deployed (piped), would-deploy from cli", deploys.Deploys)
	}

	// CI's DEPLOY_TOKEN: no status API; an image alone deploys the service running it, as a push.
	if code := apiGet(t, url+"/api/services", deployToken, nil); code != http.StatusUnauthorized {
		t.Errorf("GET /api/services with DEPLOY_TOKEN: %d, want 401", code)
	}
	req, _ := http.NewRequest(http.MethodPost, url+"/api/deploy", strings.NewReader(`{"image": "acme/web:`+tag+`"}`))
	req.Header.Set("Authorization", "Bearer "+deployToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted || !strings.Contains(string(body), `"services":["`+project+`/web"]`) {
		t.Fatalf("POST /api/deploy with DEPLOY_TOKEN: %d %s", res.StatusCode, body)
	}
	deployertest.Eventually(t, "the CI deploy's record", 60*time.Second, func() bool {
		apiGet(t, url+"/api/deploys", testToken, &deploys)
		return len(deploys.Deploys) == 5 && deploys.Deploys[0].Source == "api"
	})
	if deploys.Deploys[0].Outcome != "up-to-date" {
		t.Errorf("the CI deploy of the running image: %+v, want up-to-date", deploys.Deploys[0])
	}
}

// authRegistry is the sandbox's registry that wants a login (engine registry-auth up USER PASS),
// named by AUTH_REGISTRY, BERTH_AUTH_USER and BERTH_AUTH_PASS.
func authRegistry(t *testing.T) (host, user, pass string) {
	host, user, pass = os.Getenv("AUTH_REGISTRY"), os.Getenv("BERTH_AUTH_USER"), os.Getenv("BERTH_AUTH_PASS")
	if host == "" || user == "" || pass == "" {
		msg := "AUTH_REGISTRY, BERTH_AUTH_USER and BERTH_AUTH_PASS are not all set; run " +
			"`eval \"$(../shared/sandbox/engine registry-auth up USER PASS)\"` and export BERTH_AUTH_USER=USER BERTH_AUTH_PASS=PASS (see .ci/run)"
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return host, user, pass
}

// pushAuth gives the image tagged src the name ref and pushes it with a login.
func pushAuth(t *testing.T, eng *client.Client, src, ref, login string) {
	t.Helper()
	ctx := context.Background()
	if _, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatal(err)
	}
	rc, err := eng.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: login})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	defer rc.Close()
	dec := json.NewDecoder(rc)
	for {
		var m struct{ Error string }
		if err := dec.Decode(&m); err != nil {
			break
		}
		if m.Error != "" {
			t.Fatalf("push %s: %s", ref, m.Error)
		}
	}
}

// TestPrivateRegistryPull deploys a service whose image lives in a registry that wants a
// login: without one berth fails clearly and changes nothing; with PULL_CREDENTIALS or a docker
// config.json it deploys.
func TestPrivateRegistryPull(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	host, user, pass := authRegistry(t)
	bin := buildBerth(t)
	ctx := context.Background()
	login, _ := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": host})
	encoded := base64.URLEncoding.EncodeToString(login)

	tag := deployertest.UniqueTag("private")
	ref := host + "/acme/private:" + tag
	deployertest.PushHTTPImage(t, eng, "acme/private-src", tag+"-1", "version 1")
	deployertest.PushHTTPImage(t, eng, "acme/private-src", tag+"-2", "version 2")
	pushAuth(t, eng, deployertest.Registry()+"/acme/private-src:"+tag+"-1", ref, encoded)
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  app:\n    image: %s\n    init: true\n", ref))
	deployertest.Compose(t, compose, dir, "up", "-d") // the tag is local: no pull, no login needed
	t.Cleanup(func() { deployertest.Compose(t, compose, dir, "down", "-v", "-t", "1") })
	pushAuth(t, eng, deployertest.Registry()+"/acme/private-src:"+tag+"-2", ref, encoded)
	// No local tag may stand in for the registry (the sandbox README's pitfall).
	if _, err := eng.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	running := func() string {
		res, err := eng.ContainerInspect(ctx, project+"-app-1", client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Container.Image
	}
	v2, err := eng.ImageInspect(ctx, deployertest.Registry()+"/acme/private-src:"+tag+"-2")
	if err != nil {
		t.Fatal(err)
	}
	v1 := running()
	env := map[string]string{"OWNER": "acme", "SECRET": testSecret, "PROJECT_DIR": dir, "DOCKER_CONFIG": t.TempDir()}

	r := runBerth(t, bin, env, "deploy", "app")
	if r.code == 0 || !strings.Contains(r.lastLine(), "berth has no login for registry "+host) {
		t.Errorf("deploy without a login: exit %d, last line %q", r.code, r.lastLine())
	}
	if running() != v1 {
		t.Fatal("the failed pull changed the service")
	}
	env["PULL_CREDENTIALS"] = host + "=" + user + ":wrong-password"
	if r := runBerth(t, bin, env, "deploy", "app"); r.code == 0 || !strings.Contains(r.lastLine(), "refused berth's login") {
		t.Errorf("deploy with a wrong password: exit %d, last line %q", r.code, r.lastLine())
	}
	env["PULL_CREDENTIALS"] = host + "=" + user + ":" + pass
	if r := runBerth(t, bin, env, "deploy", "app"); r.code != 0 {
		t.Fatalf("deploy with PULL_CREDENTIALS: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if running() != v2.ID {
		t.Errorf("app runs %s, want version 2 %s", running(), v2.ID)
	}
	if r := runBerth(t, bin, env, "check"); r.code != 0 || !strings.Contains(r.stdout, "ok   "+project+"/app: "+ref+" resolves") {
		t.Errorf("check with the login: exit %d\n%s", r.code, r.stdout)
	}

	// The same login from a docker config.json, as `docker login` writes it.
	delete(env, "PULL_CREDENTIALS")
	cfg := fmt.Sprintf(`{"auths": {%q: {"auth": %q}}}`, host, base64.StdEncoding.EncodeToString([]byte(user+":"+pass)))
	if err := os.WriteFile(filepath.Join(env["DOCKER_CONFIG"], "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if r = runBerth(t, bin, env, "deploy", "app"); r.code != 0 {
		t.Fatalf("deploy with DOCKER_CONFIG's login: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if strings.Contains(r.stderr+r.stdout, pass) {
		t.Error("the password appears in berth's output")
	}
}
