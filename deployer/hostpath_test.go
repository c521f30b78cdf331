package deployer

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

func TestOwnContainerID(t *testing.T) {
	id := strings.Repeat("ab12", 16)
	mountinfo := "612 590 0:52 / / rw,relatime master:1 - overlay overlay rw\n" +
		"620 612 8:1 /var/lib/docker/containers/" + id + "/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw\n"
	if got := ownContainerID(strings.NewReader(mountinfo)); got != id {
		t.Errorf("ownContainerID = %q, want %q", got, id)
	}
	if got := ownContainerID(strings.NewReader("25 1 8:1 / / rw - ext4 /dev/sda1 rw\n")); got != "" {
		t.Errorf("outside a container: %q, want empty", got)
	}
}

// TestHostDirParity: berth sees the project at another path than the host (as through a
// container mount) and is told the host path; what it deploys must carry the host's paths, so
// compose run on the host finds nothing to recreate.
func TestHostDirParity(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("hostdir")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	files := map[string]string{
		"compose.yaml": "name: @PROJECT@\nservices:\n  web:\n    image: acme/web:" + tag + "\n    init: true\n    volumes: [./site:/www/site:ro]\n    secrets: [token]\n" +
			"secrets:\n  token: {file: ./token}\n",
		"compose.override.yaml": "services:\n  web:\n    environment: [X=1]\n",
		"site/index.html":       "hi",
		"token":                 "t",
	}
	p := newParityProject(t, eng, cli, files)
	p.compose("up", "-d", "--quiet-pull")
	ref := p.containers()

	// The same files at another path: what berth sees inside its container.
	view := filepath.Join(t.TempDir(), "project")
	if err := os.CopyFS(view, os.DirFS(p.dir)); err != nil {
		t.Fatal(err)
	}
	requireDeployed(t, p.deploy(compose.Spec{Dir: view, HostDir: p.dir}, "acme/web", tag), "web")
	got := p.containers()
	for name, c := range ref {
		diffContainers(t, name, c, got[name])
	}
	p.upChangesNothing()

	// Without HostDir berth would write its own paths, and compose would recreate.
	pr, err := compose.Load(context.Background(), compose.Spec{Dir: view})
	if err != nil {
		t.Fatal(err)
	}
	if pr.WorkingDir != view {
		t.Fatalf("working dir %s, want %s", pr.WorkingDir, view)
	}
}

// TestDetectHostDirsInContainer runs the detection in a container with the project mounted at
// /project, as berth runs from its image, and checks it finds the host path by inspecting its
// own container.
func TestDetectHostDirsInContainer(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	sock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skip("needs the engine on a unix socket to mount into the probe container")
	}
	bin := filepath.Join(t.TempDir(), "probe")
	build := exec.Command("go", "build", "-o", bin, "./testdata/hostdirprobe")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build probe: %v\n%s", err, out)
	}
	tag := deployertest.UniqueTag("probe")
	image := "berth-hostdir-probe:" + tag
	buildImage(t, eng, image, bin)

	hostDir := filepath.Join(t.TempDir(), "app")
	if err := os.MkdirAll(hostDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := newParityProject(t, eng, cli, map[string]string{
		"compose.yaml": "name: @PROJECT@\nservices:\n  probe:\n    image: " + image + "\n    network_mode: none\n" +
			"    entrypoint: [/probe]\n    environment: [DOCKER_HOST=unix:///var/run/docker.sock]\n" +
			"    volumes: [\"" + hostDir + ":/project\", \"" + sock + ":/var/run/docker.sock\"]\n" +
			"  unmounted:\n    image: " + image + "\n    network_mode: none\n    entrypoint: [/probe]\n" +
			"    environment: [DOCKER_HOST=unix:///var/run/docker.sock]\n    volumes: [\"" + sock + ":/var/run/docker.sock\"]\n",
	})
	if out := p.compose("run", "--rm", "-T", "probe", "/project"); !strings.Contains(out, "hostdir: "+hostDir+"\n") {
		t.Errorf("probe with the project mounted printed %q, want hostdir: %s", out, hostDir)
	}
	if out := p.compose("run", "--rm", "-T", "probe", "/project/sub"); !strings.Contains(out, "hostdir: "+filepath.Join(hostDir, "sub")) {
		t.Errorf("probe for a subdirectory printed %q", out)
	}
	cmd := exec.Command(cli, "run", "--rm", "-T", "unmounted", "/project")
	cmd.Dir = p.dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "is not mounted from the host") || !strings.Contains(string(out), "HOST_PROJECT_DIR") {
		t.Errorf("probe without the project mounted: err %v, output %q; want a failure naming HOST_PROJECT_DIR", err, out)
	}
}

// buildImage builds a FROM scratch image holding the static binary bin as /probe.
func buildImage(t *testing.T, eng *client.Client, ref, bin string) {
	t.Helper()
	body, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range map[string][]byte{"Dockerfile": []byte("FROM scratch\nCOPY probe /probe\n"), "probe": body} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))})
		_, _ = tw.Write(data)
	}
	_ = tw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := eng.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true, ForceRemove: true})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var m struct{ Error string }
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if m.Error != "" {
			t.Fatalf("build %s: %s", ref, m.Error)
		}
	}
	t.Cleanup(func() { _, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true}) })
}
