package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestREADMEFirstRun runs the README's first command verbatim, as a new user would, in a copy
// of the repository on the test engine, then what the Quick start says works next: docker
// compose ps and logs, berth status and check through exec, and a push that redeploys the
// example app. The environment says only where the socket is (DOCKER_SOCKET) and keeps the
// image tag and ports off other tests' (BERTH_IMAGE, BERTH_PORT, EXAMPLE_PORT).
func TestREADMEFirstRun(t *testing.T) {
	eng := deployertest.Engine(t)
	sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skipf("berth's socket proxy mounts the engine's socket; DOCKER_HOST=%q is not a unix socket", os.Getenv("DOCKER_HOST"))
	}
	if out, err := exec.Command("docker", "compose", "version").CombinedOutput(); err != nil {
		msg := fmt.Sprintf("the README's commands need `docker compose`: %v %s; run ../shared/sandbox/engine compose", err, out)
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	first := readmeFirstCommand(t)
	dir := copyRepository(t)
	tag := deployertest.UniqueTag("first")
	for k, v := range map[string]string{
		"DOCKER_SOCKET": sock, "BERTH_IMAGE": "berth-test:" + tag, "BERTH_BIND": "127.0.0.1", "BERTH_PORT": "",
		"EXAMPLE_PORT": freePort(t),
	} {
		t.Setenv(k, v)
	}
	for _, k := range []string{"COMPOSE_PROJECT_NAME", "COMPOSE_FILE", "COMPOSE_PROFILES"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	docker := func(args ...string) string {
		t.Helper()
		out, err := runIn(dir, "docker", args...)
		if err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := runIn(dir, "docker", "compose", "logs", "--no-color")
			t.Logf("berth's project log:\n%s", out)
		}
		_, _ = runIn(dir, "docker", "compose", "down", "-v", "-t", "1")
		_, _ = runIn(dir, "docker", "compose", "-f", "example/compose.yaml", "down", "-v", "-t", "1")
		_, _ = runIn(dir, "docker", "image", "rm", "berth-test:"+tag)
	})

	start := time.Now()
	out, err := runIn(dir, "sh", "-c", first)
	if err != nil {
		t.Fatalf("the README's first command %q: %v\n%s", first, err, out)
	}
	t.Logf("%s took %s", first, time.Since(start).Round(time.Millisecond))
	secret := envFileValue(t, filepath.Join(dir, ".env"), "SECRET")
	if !strings.Contains(out, "/webhook?secret="+secret) {
		t.Errorf("setup printed no webhook URL with the secret from .env:\n%s", out)
	}

	if ps := docker("compose", "ps"); !strings.Contains(ps, "berth-berth-1") || !strings.Contains(ps, "berth-socket-proxy-1") {
		t.Errorf("docker compose ps lacks berth or its proxy:\n%s", ps)
	}
	if logs := docker("compose", "logs", "berth"); !strings.Contains(logs, "listening") || strings.Contains(logs, secret) {
		t.Errorf("docker compose logs berth: want the listening line and never the secret:\n%s", logs)
	}
	if status := docker("compose", "exec", "-T", "berth", "berth", "status"); !strings.Contains(status, "berth-example/hello") {
		t.Errorf("berth status does not list the example:\n%s", status)
	}
	// Other tests' projects on the shared engine may fail the check as a whole; these lines may not.
	check, _ := runIn(dir, "docker", "compose", "exec", "-T", "berth", "berth", "check")
	for _, want := range []string{"ok   project berth: berth itself (not redeployed)", "ok   project berth-example loads", "ok   berth-example/hello: busybox:1 resolves"} {
		if !strings.Contains(check, want) {
			t.Errorf("berth check lacks %q:\n%s", want, check)
		}
	}

	redeployExample(t, eng, dir, tag, secret, docker)
	t.Logf("first run to redeployed example: %s", time.Since(start).Round(time.Millisecond))
}

// redeployExample does the Quick start's push step: the example runs yourname/hello, a new
// version is pushed, and Docker Hub's webhook to berth makes the example serve it.
func redeployExample(t *testing.T, eng *client.Client, dir, tag, secret string, docker func(...string) string) {
	t.Helper()
	deployertest.PushHTTPImage(t, eng, "yourname/hello", tag, "version 1")
	// In the project's .env, not the environment: berth loads the project from its files.
	dotenv := fmt.Sprintf("EXAMPLE_IMAGE=yourname/hello:%s\nEXAMPLE_PORT=%s\n", tag, os.Getenv("EXAMPLE_PORT"))
	if err := os.WriteFile(filepath.Join(dir, "example/.env"), []byte(dotenv), 0o644); err != nil {
		t.Fatal(err)
	}
	docker("compose", "-f", "example/compose.yaml", "up", "-d")
	page := "http://" + strings.TrimSpace(docker("compose", "-f", "example/compose.yaml", "port", "hello", "80")) + "/"
	deployertest.Eventually(t, "the example to serve version 1", 30*time.Second, func() bool {
		got, _ := deployertest.Get(page)
		return got == "version 1"
	})
	deployertest.PushHTTPImage(t, eng, "yourname/hello", tag, "version 2")
	payload := strings.ReplaceAll(dockerHubPayload(t, tag), "acme/web", "yourname/hello")
	payload = strings.ReplaceAll(payload, `"namespace": "acme"`, `"namespace": "yourname"`)
	berth := "http://" + strings.TrimSpace(docker("compose", "port", "berth", "8080"))
	status, body := post(t, berth+"/webhook?secret="+secret, payload)
	if status != http.StatusAccepted || !strings.Contains(body, "berth-example/hello") {
		t.Fatalf("webhook answered %d %s, want 202 naming berth-example/hello", status, body)
	}
	deployertest.Eventually(t, "the example to serve version 2", 60*time.Second, func() bool {
		got, _ := deployertest.Get(page)
		return got == "version 2"
	})
}

// readmeFirstCommand is the first line of the README's first sh block.
func readmeFirstCommand(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?m)^```sh\n(.*)\n").FindSubmatch(b)
	if m == nil {
		t.Fatal("README.md has no ```sh block")
	}
	return string(m[1])
}

// copyRepository copies what the recommended setup uses (setup.sh, docker-compose.yml, the
// example app and the image's build context) into a fresh directory berth's uid can read, so
// the setup's .env never lands in the working tree. buildBerthImage builds from such a copy
// too, so the two builds share the builder's layer cache.
func copyRepository(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	for _, d := range []string{filepath.Dir(dst), dst} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if name := e.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		// Everything the build and the README's commands read (sources, embedded assets, compose
		// files, the setup script); not tests, docs, or what a user's own run leaves (.env, binaries).
		name := e.Name()
		skip := strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, ".md") || strings.HasSuffix(name, ".test") ||
			strings.HasSuffix(name, ".out") || (strings.HasPrefix(name, ".") && name != ".dockerignore") || path == "berth"
		if skip {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, path)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if path == "setup.sh" {
			mode = 0o755
		}
		if err := os.WriteFile(to, b, mode); err != nil {
			return err
		}
		return os.Chtimes(to, time.Unix(0, 0), time.Unix(0, 0))
	})
	if err != nil {
		t.Fatalf("copy the repository: %v", err)
	}
	return dst
}

// runIn runs name with args in dir and returns its combined output.
func runIn(dir, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// envFileValue is key's value in the env file at path.
func envFileValue(t *testing.T, path, key string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), key+"="); ok {
			return v
		}
	}
	t.Fatalf("%s sets no %s", path, key)
	return ""
}

// freePort is a loopback port nothing listens on now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}
