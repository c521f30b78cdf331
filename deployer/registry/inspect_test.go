package registry

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
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

// requireSameAsEngine compares a registry summary with the engine's inspect and history of the
// same image (the one the test built and pushed).
func requireSameAsEngine(t *testing.T, eng *client.Client, local string, info ImageInfo) {
	t.Helper()
	ctx := context.Background()
	img, err := eng.ImageInspect(ctx, local)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsLocalID(img.ID) { // the config digest on the classic store, the manifest's on containerd's
		t.Errorf("config digest %s, digest %s, manifest %s; engine image ID %s", info.ConfigDigest, info.Digest, info.ManifestDigest, img.ID)
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

func TestInspectMatchesEngine(t *testing.T) {
	eng := deployertest.Engine(t)
	ref := deployertest.PushInspectImage(t, eng)
	repo, tag, _ := strings.Cut(strings.TrimPrefix(ref, deployertest.Registry()+"/"), ":")

	info, err := Inspect(context.Background(), ref, authn.NewMultiKeychain()) // no credentials needed
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
	if l := info.Labels; l["org.opencontainers.image.version"] != "1.2.3" || l["org.opencontainers.image.revision"] != "abc123" {
		t.Errorf("OCI labels %v", l)
	}

	_, err = Inspect(context.Background(), deployertest.Registry()+"/acme/inspect:no-such-tag", nil)
	if fault.KindOf(err) != fault.NotFound {
		t.Errorf("missing tag: %v (kind %v), want not found", err, fault.KindOf(err))
	}
	if _, err := Inspect(context.Background(), "Not A Ref", nil); fault.KindOf(err) != fault.Invalid {
		t.Errorf("bad reference: %v, want invalid", err)
	}
}

func TestInspectWithCredentials(t *testing.T) {
	eng := deployertest.Engine(t)
	addr, user, pass := deployertest.AuthRegistry(t)
	src, img := deployertest.PushedInspectImage(t, eng)

	// Copy the image into the htpasswd registry through the registry API: same config, same history.
	dst := addr + "/acme/private:" + deployertest.UniqueTag("inspect")
	deployertest.CopyImage(t, img, dst, user, pass)

	deployertest.DockerConfig(t, map[string][2]string{addr: {user, pass}})
	info, err := Inspect(context.Background(), dst, dockerConfigKeychain(t))
	if err != nil {
		t.Fatalf("with config.json credentials: %v", err)
	}
	requireSameAsEngine(t, eng, src, info)

	// REGISTRY_AUTH_CONFIG's credentials serve inspection too, with no DOCKER_CONFIG ones.
	deployertest.DockerConfig(t, map[string][2]string{})
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`, addr, user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := Inspect(context.Background(), dst, auth.Keychain()); err != nil || got.ConfigDigest != info.ConfigDigest {
		t.Errorf("with REGISTRY_AUTH_CONFIG: %+v, %v", got, err)
	}

	for what, auths := range map[string]map[string][2]string{
		"no credentials":    {},
		"wrong credentials": {addr: {user, "wrong-password"}},
	} {
		deployertest.DockerConfig(t, auths)
		_, err := Inspect(context.Background(), dst, dockerConfigKeychain(t))
		if fault.KindOf(err) != fault.Forbidden || !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "docker login "+addr) {
			t.Errorf("%s: %v (kind %v), want forbidden naming the 401 and the login to run", what, err, fault.KindOf(err))
		}
	}
}

// dockerConfigKeychain is the logins of the config.json under DOCKER_CONFIG, loaded as berth
// loads its pull logins (Inspect reads no process environment itself).
func dockerConfigKeychain(t *testing.T) authn.Keychain {
	t.Helper()
	creds, err := LoadConfig(filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return creds.Keychain()
}

// TestInspectIndex: for a multi-platform index, the platforms it offers are listed and
// the engine's platform is the one summarized.
func TestInspectIndex(t *testing.T) {
	eng := deployertest.Engine(t)
	src, img := deployertest.PushedInspectImage(t, eng)
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
	info, err := Inspect(context.Background(), dst.Name(), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"linux/" + runtime.GOARCH, "linux/s390x"}
	if !strings.Contains(info.MediaType, "index") || !slices.Equal(info.Platforms, want) || info.Digest == info.ManifestDigest {
		t.Errorf("index: media type %s, platforms %v (want %v), digest %s, manifest %s", info.MediaType, info.Platforms, want, info.Digest, info.ManifestDigest)
	}
	requireSameAsEngine(t, eng, src, info)
}

// TestInspectNeverEchoesARemoteBody: whatever a host answers, the error says its status only;
// the read API can name any host berth reaches, so its body must not come back to the caller.
// (A fake host: what is under test is the error text of a registry no real one imitates.)
func TestInspectNeverEchoesARemoteBody(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusInternalServerError, http.StatusTeapot} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" {
				return
			}
			w.WriteHeader(status)
			_, _ = io.WriteString(w, "internal admin page: password=hunter2")
		}))
		ref := strings.TrimPrefix(srv.URL, "http://") + "/acme/web:1"
		_, err := Inspect(context.Background(), ref, nil)
		srv.Close()
		if err == nil || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), strconv.Itoa(status)) {
			t.Errorf("status %d: error %v, want the status and no body", status, err)
		}
	}
}
