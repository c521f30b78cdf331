package main

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// buildContext is the repository as the Dockerfile needs it: the Dockerfile, go.mod, go.sum and
// every non-test Go file. Tests, fixtures and docs stay out, and every file gets the same
// mtime, so the builder's layer cache holds until the program itself changes.
func buildContext(t *testing.T) io.Reader {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	err := filepath.WalkDir(".", func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			if name := e.Name(); path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "example") {
				return filepath.SkipDir
			}
			return nil
		}
		keep := path == "Dockerfile" || path == "go.mod" || path == "go.sum" ||
			strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go")
		if !keep {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		hdr := &tar.Header{Name: filepath.ToSlash(path), Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err = tw.Write(b)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err != nil {
		t.Fatalf("build context: %v", err)
	}
	return &buf
}

// buildBerthImage builds the repository's Dockerfile through the Engine API, as
// `docker build --network host .` does (the module download needs the host's network), and
// tags it with a name no other test uses.
func buildBerthImage(t *testing.T, eng *client.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	ref := "berth-test:" + deployertest.UniqueTag("img")
	res, err := eng.ImageBuild(ctx, buildContext(t), client.ImageBuildOptions{
		Tags: []string{ref}, NetworkMode: "host", Remove: true, ForceRemove: true,
	})
	if err != nil {
		t.Fatalf("build berth's image: %v (does `FROM golang:1.26` resolve? run ../shared/sandbox/engine seed-golang)", err)
	}
	defer res.Body.Close()
	var out strings.Builder
	dec := json.NewDecoder(res.Body)
	for {
		var m struct {
			Stream string `json:"stream"`
			Error  string `json:"error"`
		}
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("build berth's image: %v\n%s", err, out.String())
		}
		out.WriteString(m.Stream)
		if m.Error != "" {
			t.Fatalf("build berth's image: %s\n%s", m.Error, out.String())
		}
	}
	t.Cleanup(func() {
		// The final image only: the build stage's layers stay behind as the next run's cache.
		_, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	})
	if img, err := eng.ImageInspect(ctx, ref); err == nil {
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
