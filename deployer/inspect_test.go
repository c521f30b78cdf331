package deployer

import (
	"context"
	"encoding/base64"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/fault"
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

// pushInspectImage pushes a multi-layer image to the sandbox registry and returns its reference there.
func pushInspectImage(t *testing.T, eng *client.Client) string {
	t.Helper()
	tag := deployertest.UniqueTag("inspect")
	deployertest.PushImage(t, eng, "acme/inspect", tag, inspectDockerfile)
	ref := deployertest.Registry() + "/acme/inspect:" + tag
	t.Cleanup(func() { _, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{}) })
	return ref
}

// pushedInspectImage is pushInspectImage, with the pushed image as the registry serves it.
func pushedInspectImage(t *testing.T, eng *client.Client) (string, v1.Image) {
	t.Helper()
	ref := pushInspectImage(t, eng)
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

// requireSameAsEngine compares a registry summary with the engine's inspect and history of the
// same image (the one the test built and pushed).
func requireSameAsEngine(t *testing.T, eng *client.Client, local string, info ImageInfo) {
	t.Helper()
	ctx := context.Background()
	img, err := eng.ImageInspect(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	if info.ConfigDigest != img.ID {
		t.Errorf("config digest %s, engine image ID %s", info.ConfigDigest, img.ID)
	}
	if !maps.Equal(info.Labels, img.Config.Labels) {
		t.Errorf("labels %v, engine says %v", info.Labels, img.Config.Labels)
	}
	if want := slices.Sorted(maps.Keys(img.Config.ExposedPorts)); !slices.Equal(info.ExposedPorts, want) {
		t.Errorf("exposed ports %v, engine says %v", info.ExposedPorts, want)
	}
	hist, err := eng.ImageHistory(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	items := slices.Clone(hist.Items)
	slices.Reverse(items) // the engine lists newest first
	if len(items) != len(info.History) {
		t.Fatalf("%d history entries, engine lists %d", len(info.History), len(items))
	}
	layers := 0
	for i, h := range info.History {
		e := items[i]
		if h.CreatedBy != e.CreatedBy || h.Created.Unix() != e.Created {
			t.Errorf("history %d: %q at %s, engine: %q at %d", i, h.CreatedBy, h.Created, e.CreatedBy, e.Created)
		}
		if !h.EmptyLayer {
			layers++
		}
		// The engine reports an empty step as a zero-size entry.
		if h.EmptyLayer && e.Size != 0 {
			t.Errorf("history %d %q is empty in the config, the engine gives it %d bytes", i, h.CreatedBy, e.Size)
		}
	}
	if layers != info.Layers || info.Layers < 3 {
		t.Errorf("%d layers in the manifest, %d non-empty history steps; want the same, at least 3", info.Layers, layers)
	}
	if !info.Created.Equal(time.Unix(0, 0)) && info.Created.Unix() != items[len(items)-1].Created {
		t.Errorf("created %s, the newest history step %d", info.Created, items[len(items)-1].Created)
	}
}

func TestInspectRemoteMatchesEngine(t *testing.T) {
	eng := deployertest.Engine(t)
	ref := pushInspectImage(t, eng)
	repo, tag, _ := strings.Cut(strings.TrimPrefix(ref, deployertest.Registry()+"/"), ":")

	info, err := InspectRemote(context.Background(), ref, authn.NewMultiKeychain()) // no credentials needed
	if err != nil {
		t.Fatal(err)
	}
	if want := deployertest.ManifestDigest(t, deployertest.Registry(), repo, tag); info.Digest != want || info.ManifestDigest != want {
		t.Errorf("digest %s / manifest %s, registry says %s", info.Digest, info.ManifestDigest, want)
	}
	if !strings.Contains(info.MediaType, "manifest") || len(info.Platforms) != 1 || !strings.HasPrefix(info.Platforms[0], "linux/") {
		t.Errorf("media type %q, platforms %v", info.MediaType, info.Platforms)
	}
	requireSameAsEngine(t, eng, ref, info)
	if got := ociLabels(info.Labels); got[LabelOCIVersion] != "1.2.3" || got[LabelOCIRevision] != "abc123" || len(got) != 3 {
		t.Errorf("OCI labels %v", got)
	}

	_, err = InspectRemote(context.Background(), deployertest.Registry()+"/acme/inspect:no-such-tag", nil)
	if fault.KindOf(err) != fault.NotFound {
		t.Errorf("missing tag: %v (kind %v), want not found", err, fault.KindOf(err))
	}
	if _, err := InspectRemote(context.Background(), "Not A Ref", nil); fault.KindOf(err) != fault.Invalid {
		t.Errorf("bad reference: %v, want invalid", err)
	}
}

// authRegistry returns an htpasswd registry and its credentials: the one CI starts for the
// swarm tests when its variables are set, else the sandbox's, started with `registry-auth up`.
func authRegistry(t *testing.T) (addr, user, pass string) {
	t.Helper()
	if addr := os.Getenv("BERTH_SWARM_AUTH_REGISTRY"); addr != "" {
		return addr, os.Getenv("BERTH_SWARM_AUTH_USER"), os.Getenv("BERTH_SWARM_AUTH_PASS")
	}
	user, pass = "berth", "sandbox-pass-0123"
	script := os.Getenv("BERTH_SANDBOX")
	for _, candidate := range []string{"../../shared/sandbox/engine", "../shared/sandbox/engine", "/work/shared/sandbox/engine"} {
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

// dockerConfig writes a config.json holding auths and points DOCKER_CONFIG at it, as berth's
// container would have it mounted.
func dockerConfig(t *testing.T, auths map[string][2]string) {
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

func TestInspectRemoteWithCredentials(t *testing.T) {
	eng := deployertest.Engine(t)
	addr, user, pass := authRegistry(t)
	src, img := pushedInspectImage(t, eng)

	// Copy the image into the htpasswd registry through the registry API: same config, same history.
	dst := addr + "/acme/private:" + deployertest.UniqueTag("inspect")
	dstRef, err := name.ParseReference(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dstRef, img, remote.WithAuth(&authn.Basic{Username: user, Password: pass})); err != nil {
		t.Fatal(err)
	}

	dockerConfig(t, map[string][2]string{addr: {user, pass}})
	info, err := InspectRemote(context.Background(), dst, nil)
	if err != nil {
		t.Fatalf("with config.json credentials: %v", err)
	}
	requireSameAsEngine(t, eng, src, info)

	// REGISTRY_AUTH_CONFIG's credentials serve inspection too, with no DOCKER_CONFIG ones.
	dockerConfig(t, map[string][2]string{})
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`, addr, user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := LoadRegistryAuth(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := New(context.Background(), eng, Options{RegistryAuth: auth})
	if rep, err := d.InspectImage(context.Background(), dst); err != nil || rep.Image.ConfigDigest != info.ConfigDigest {
		t.Errorf("with REGISTRY_AUTH_CONFIG: %+v, %v", rep.Image, err)
	}

	for what, auths := range map[string]map[string][2]string{
		"no credentials":    {},
		"wrong credentials": {addr: {user, "wrong-password"}},
	} {
		dockerConfig(t, auths)
		_, err := InspectRemote(context.Background(), dst, nil)
		if fault.KindOf(err) != fault.Forbidden || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "docker login "+addr) {
			t.Errorf("%s: %v (kind %v), want forbidden naming the 401 and the login to run", what, err, fault.KindOf(err))
		}
	}
}

// TestInspectRemoteIndex: for a multi-platform index, the platforms it offers are listed and
// the engine's platform is the one summarized.
func TestInspectRemoteIndex(t *testing.T) {
	eng := deployertest.Engine(t)
	src, img := pushedInspectImage(t, eng)
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: runtime.GOARCH}}},
		mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}})
	dst, err := name.ParseReference(deployertest.Registry() + "/acme/inspect:" + deployertest.UniqueTag("index"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(dst, idx); err != nil {
		t.Fatal(err)
	}
	info, err := InspectRemote(context.Background(), dst.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"linux/" + runtime.GOARCH, "linux/s390x"}
	if !strings.Contains(info.MediaType, "index") || !slices.Equal(info.Platforms, want) || info.Digest == info.ManifestDigest {
		t.Errorf("index: media type %s, platforms %v (want %v), digest %s, manifest %s", info.MediaType, info.Platforms, want, info.Digest, info.ManifestDigest)
	}
	requireSameAsEngine(t, eng, src, info)
}
