// Package deployertest gives berth's tests a real Docker Engine and registry: it connects to
// the engine named by DOCKER_HOST, skips (or fails, with BERTH_REQUIRE_ENGINE=1) when there is
// none, and builds and pushes small HTTP images whose body names their version.
package deployertest

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Registry is the sandbox registry that the engine also uses as its Docker Hub mirror:
// pushing Registry/acme/web:1 makes acme/web:1 pullable.
func Registry() string {
	if r := os.Getenv("REGISTRY"); r != "" {
		return r
	}
	return "127.0.0.1:5000"
}

// Engine returns a client for the test engine, or skips the test when none answers, unless
// BERTH_REQUIRE_ENGINE=1, where a missing engine fails the test.
func Engine(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.New(client.FromEnv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		msg := fmt.Sprintf("no Docker Engine reachable (DOCKER_HOST=%q): %v; start one with `eval \"$(../shared/sandbox/engine up)\"`", os.Getenv("DOCKER_HOST"), err)
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg + " (BERTH_REQUIRE_ENGINE=1, so this is a failure)")
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// ComposeCLI returns the path of a docker compose binary of the given version ("v5.6.0",
// "v2.40.3") built by the sandbox, skipping or failing like Engine when it is missing.
func ComposeCLI(t testing.TB, version string) string {
	t.Helper()
	dir := os.Getenv("BERTH_COMPOSE_DIR")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = home + "/.cache/berth-sandbox"
	}
	path := dir + "/docker-compose-" + version
	if _, err := os.Stat(path); err != nil {
		msg := fmt.Sprintf("docker compose %s not found at %s; build it with `../shared/sandbox/engine compose %s`", version, path, version)
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return path
}

// Compose runs the compose CLI at bin in dir with args and fails the test on error.
func Compose(t testing.TB, bin, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", bin, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ComposeUp starts the project in dir with `compose up -d` and takes it down, volumes
// included, when the test ends.
func ComposeUp(t testing.TB, bin, dir string) {
	t.Helper()
	Compose(t, bin, dir, "up", "-d", "--quiet-pull")
	t.Cleanup(func() { Compose(t, bin, dir, "down", "-v", "-t", "1") })
}

// WriteProject lays out a compose project named name (its directory's name) in a fresh
// directory, with compose as its compose.yaml, and returns the directory.
func WriteProject(t testing.TB, name, compose string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// UniqueTag returns a tag no other test run uses, so tests can share one registry.
func UniqueTag(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return prefix + "-" + hex.EncodeToString(b[:])
}

// PushHTTPImage builds a busybox image whose HTTP server on port 80 answers body, and pushes it
// to the sandbox registry as repo:tag (e.g. "acme/web", "1"). Extra Dockerfile lines go before CMD.
func PushHTTPImage(t testing.TB, c *client.Client, repo, tag, body string, extra ...string) {
	t.Helper()
	dockerfile := "FROM busybox:1\n" +
		"RUN mkdir -p /www && printf '%s' '" + body + "' > /www/index.html\n" +
		strings.Join(extra, "\n") + "\n" +
		`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n"
	PushImage(t, c, repo, tag, dockerfile)
}

// PushImage builds dockerfile (a context of just that file) and pushes it as repo:tag.
func PushImage(t testing.TB, c *client.Client, repo, tag, dockerfile string) {
	t.Helper()
	pushImageTo(t, c, Registry(), repo, tag, dockerfile)
}

func pushImageTo(t testing.TB, c *client.Client, registry, repo, tag, dockerfile string) {
	t.Helper()
	pushImageAuth(t, c, registry, "e30=", repo, tag, dockerfile) // base64 "{}": no credentials
}

// PushImageAuth is PushImageTo a registry that wants credentials; auth is the X-Registry-Auth
// value (RegistryAuthHeader). The built image stays tagged registry/repo:tag on the engine.
func PushImageAuth(t testing.TB, c *client.Client, registry, auth, repo, tag, dockerfile string) {
	t.Helper()
	pushImageAuth(t, c, registry, auth, repo, tag, dockerfile)
}

// RegistryAuthHeader encodes user and password for registry as the X-Registry-Auth header.
func RegistryAuthHeader(registry, user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass, "serveraddress": registry})
	return base64.URLEncoding.EncodeToString(b)
}

func pushImageAuth(t testing.TB, c *client.Client, registry, auth, repo, tag, dockerfile string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ref := registry + "/" + repo + ":" + tag
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	_ = tw.WriteHeader(&tar.Header{Name: "Dockerfile", Mode: 0o644, Size: int64(len(dockerfile))})
	_, _ = tw.Write([]byte(dockerfile))
	_ = tw.Close()
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	if err := Drain(res.Body); err != nil {
		t.Fatalf("build %s: %v", ref, err)
	}
	push, err := c.ImagePush(ctx, ref, client.ImagePushOptions{RegistryAuth: auth})
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	if err := Drain(push); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
}

// Drain reads the JSON message stream of an engine build, pull or push to its end and returns
// the first error it reports (the engine answers 200 and reports failures inside the stream).
func Drain(r io.ReadCloser) error {
	defer r.Close()
	dec := json.NewDecoder(r)
	for {
		var m struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if m.Error != "" {
			return fmt.Errorf("%s", m.Error)
		}
	}
}

// Get fetches url once and returns the body, or "" and the error.
func Get(url string) (string, error) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return string(b), err
}

// Eventually polls cond every 50 ms until it holds or the bound passes; the bound is a
// safety net against a hung test, not a performance assertion.
func Eventually(t testing.TB, what string, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s after %s", what, bound)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// PushImageTo is PushImage to another registry (host:port), e.g. a second sandbox's.
func PushImageTo(t testing.TB, c *client.Client, registry, repo, tag, dockerfile string) {
	t.Helper()
	pushImageTo(t, c, registry, repo, tag, dockerfile)
}

// PushHTTPImageTo is PushHTTPImage to another registry (host:port), e.g. one a test started.
func PushHTTPImageTo(t testing.TB, c *client.Client, registry, repo, tag, body string) {
	t.Helper()
	dockerfile := "FROM busybox:1\n" +
		"RUN mkdir -p /www && printf '%s' '" + body + "' > /www/index.html\n" +
		`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n"
	pushImageTo(t, c, registry, repo, tag, dockerfile)
}

// ManifestDigest asks registry (host:port, plain HTTP) which manifest digest repo:tag names.
func ManifestDigest(t testing.TB, registry, repo, tag string) string {
	t.Helper()
	req, err := http.NewRequest(http.MethodHead, "http://"+registry+"/v2/"+repo+"/manifests/"+tag, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", strings.Join([]string{"application/vnd.docker.distribution.manifest.v2+json",
		"application/vnd.docker.distribution.manifest.list.v2+json", "application/vnd.oci.image.manifest.v1+json",
		"application/vnd.oci.image.index.v1+json"}, ", "))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("manifest of %s:%s: %v", repo, tag, err)
	}
	resp.Body.Close()
	d := resp.Header.Get("Docker-Content-Digest")
	if resp.StatusCode != http.StatusOK || d == "" {
		t.Fatalf("manifest of %s:%s: %s, digest %q", repo, tag, resp.Status, d)
	}
	return d
}

// Log collects what several goroutines write (a logger's output) while a test reads it.
type Log struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
