package deployer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/registry"
)

// TestInspectImageWithRegistryAuth: the credentials berth forwards to the swarm
// (REGISTRY_AUTH_CONFIG) serve image inspection too, with no DOCKER_CONFIG ones, and the OCI
// labels berth records are read from the inspected image.
func TestInspectImageWithRegistryAuth(t *testing.T) {
	eng := deployertest.Engine(t)
	addr, user, pass := deployertest.AuthRegistry(t)
	src, img := deployertest.PushedInspectImage(t, eng)
	dst := addr + "/acme/private:" + deployertest.UniqueTag("inspect")
	deployertest.CopyImage(t, img, dst, user, pass)
	local, err := eng.ImageInspect(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}

	deployertest.DockerConfig(t, map[string][2]string{})
	cfg := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`, addr, user, pass)), 0o600); err != nil {
		t.Fatal(err)
	}
	auth, err := registry.LoadConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := New(context.Background(), eng, Options{RegistryAuth: auth})
	rep, err := d.InspectImage(context.Background(), dst)
	if err != nil || !rep.Image.IsLocalID(local.ID) {
		t.Fatalf("with REGISTRY_AUTH_CONFIG: %+v, %v; want the image of local ID %s", rep.Image, err, local.ID)
	}
	if got := ociLabels(rep.Image.Labels); got[LabelOCIVersion] != "1.2.3" || got[LabelOCIRevision] != "abc123" || len(got) != 3 {
		t.Errorf("OCI labels %v", got)
	}
}
