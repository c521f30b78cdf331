package deployertest

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"
)

// inspectDockerfile builds an image with several layers, empty history steps, OCI labels and
// exposed ports: everything the inspection reports.
const inspectDockerfile = `FROM busybox:1
LABEL org.opencontainers.image.version=1.2.3 org.opencontainers.image.revision=abc123 org.opencontainers.image.source=https://git.acme.example/acme/web
RUN echo one > /one
RUN echo two > /two && mkdir /www && echo hello > /www/index.html
ENV MODE=production
EXPOSE 8080/tcp 53/udp
CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]
`

// PushInspectImage pushes a multi-layer image with OCI labels (version 1.2.3, revision abc123,
// a source) and exposed ports to the sandbox registry, and returns its reference there.
func PushInspectImage(t testing.TB, eng *client.Client) string {
	t.Helper()
	tag := UniqueTag("inspect")
	PushImage(t, eng, "acme/inspect", tag, inspectDockerfile)
	ref := Registry() + "/acme/inspect:" + tag
	t.Cleanup(func() { _, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{}) })
	return ref
}

// PushedInspectImage is PushInspectImage, with the pushed image as the registry serves it.
func PushedInspectImage(t testing.TB, eng *client.Client) (string, v1.Image) {
	t.Helper()
	ref := PushInspectImage(t, eng)
	parsed, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(parsed)
	if err != nil {
		t.Fatal(err)
	}
	return ref, img
}

// CopyImage writes img to dst, a registry that wants user and pass, through the registry API:
// same config, same history.
func CopyImage(t testing.TB, img v1.Image, dst, user, pass string) {
	t.Helper()
	dstRef, err := name.ParseReference(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dstRef, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}
}

// AuthRegistry returns an htpasswd registry and its credentials: the one CI starts for the
// swarm tests when its variables are set, else the sandbox's, started with `registry-auth up`.
func AuthRegistry(t testing.TB) (addr, user, pass string) {
	t.Helper()
	if addr := os.Getenv("BERTH_SWARM_AUTH_REGISTRY"); addr != "" {
		return addr, os.Getenv("BERTH_SWARM_AUTH_USER"), os.Getenv("BERTH_SWARM_AUTH_PASS")
	}
	user, pass = "berth", "sandbox-pass-0123"
	script := os.Getenv("BERTH_SANDBOX")
	// Relative to the test's package directory: deployer/ or a package below it.
	for _, candidate := range []string{"../../shared/sandbox/engine", "../../../shared/sandbox/engine", "../shared/sandbox/engine", "/work/shared/sandbox/engine"} {
		if _, err := os.Stat(candidate); script == "" && err == nil {
			script = candidate
		}
	}
	if script == "" {
		msg := "no htpasswd registry: set BERTH_SWARM_AUTH_REGISTRY/_USER/_PASS or BERTH_SANDBOX (the sandbox's engine script)"
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	out, err := exec.Command(script, "registry-auth", "up", user, pass).Output()
	if err != nil {
		t.Fatalf("%s registry-auth up: %v", script, err)
	}
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "export AUTH_REGISTRY="); ok {
			return strings.TrimSpace(v), user, pass
		}
	}
	t.Fatalf("registry-auth up printed no AUTH_REGISTRY:\n%s", out)
	return
}

// DockerConfig writes a config.json holding auths (host: user, password) and points
// DOCKER_CONFIG at it, as berth's container would have it mounted.
func DockerConfig(t *testing.T, auths map[string][2]string) {
	t.Helper()
	dir := t.TempDir()
	var entries []string
	for host, up := range auths {
		entries = append(entries, fmt.Sprintf("%q: {\"auth\": %q}", host, base64.StdEncoding.EncodeToString([]byte(up[0]+":"+up[1]))))
	}
	body := `{"auths": {` + strings.Join(entries, ", ") + `}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
}
