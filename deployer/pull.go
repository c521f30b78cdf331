package deployer

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/distribution/reference"
	"github.com/moby/moby/client"
)

// pullPinned makes ref resolve locally to exactly the pushed manifest when the sender reported
// its digest: pull repo@digest, then tag that image as ref, so compose still finds its own
// reference. A tag pull would deploy whatever the tag points at by the time we pull, which a
// later push may already have moved. Without a digest it pulls ref as compose would.
func (d *Deployer) pullPinned(ctx context.Context, ref, digest string) error {
	if digest == "" {
		return d.pull(ctx, ref)
	}
	pinned, err := pinnedRef(ref, digest)
	if err != nil {
		return err
	}
	if err := d.pull(ctx, pinned); err != nil {
		return err
	}
	if _, err := d.eng.ImageTag(ctx, client.ImageTagOptions{Source: pinned, Target: ref}); err != nil {
		return fmt.Errorf("tag %s as %s: %w", pinned, ref, err)
	}
	return nil
}

// pinnedRef is ref's repository at digest: registry.acme.example/acme/web@sha256:….
func pinnedRef(ref, digest string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "image reference %q: %w", ref, err)
	}
	pinned, err := reference.ParseNormalizedNamed(named.Name() + "@" + digest)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "pushed digest %q is not a valid digest: %w", digest, err)
	}
	return pinned.String(), nil
}
