package deployer

import (
	"context"
	"slices"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/fault"
)

// TestPullPinnedDeploysThePushedDigest moves the tag to a newer image before berth pulls: the
// service must still get exactly the digest the webhook reported, under its own reference.
func TestPullPinnedDeploysThePushedDigest(t *testing.T) {
	eng := deployertest.Engine(t)
	ctx := context.Background()
	tag := deployertest.UniqueTag("pin")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "pinned")
	pushed := deployertest.ManifestDigest(t, deployertest.Registry(), "acme/web", tag)
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "later")
	if later := deployertest.ManifestDigest(t, deployertest.Registry(), "acme/web", tag); later == pushed {
		t.Fatal("the second push did not move the tag")
	}
	ref := "acme/web:" + tag
	t.Cleanup(func() {
		for _, r := range []string{ref, "acme/web@" + pushed} {
			_, _ = eng.ImageRemove(context.Background(), r, client.ImageRemoveOptions{})
		}
	})

	d := New(ctx, eng, Options{})
	if err := d.pullPinned(ctx, ref, pushed); err != nil {
		t.Fatal(err)
	}
	img, err := eng.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(img.RepoDigests, "acme/web@"+pushed) {
		t.Errorf("%s is %s with repo digests %v, want the pushed %s", ref, img.ID, img.RepoDigests, pushed)
	}
	byDigest, err := eng.ImageInspect(ctx, "acme/web@"+pushed)
	if err != nil || byDigest.ID != img.ID {
		t.Errorf("%s is image %s, the pushed digest is image %s (%v)", ref, img.ID, byDigest.ID, err)
	}

	if err := d.pullPinned(ctx, ref, "sha256:nothex"); fault.KindOf(err) != fault.Invalid {
		t.Errorf("a malformed digest gave %v, want an invalid-input error", err)
	}
}
