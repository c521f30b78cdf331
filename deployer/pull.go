package deployer

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/deployer/registry"
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
	pinned, err := registry.Pinned(ref, digest)
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

// pull fetches ref and fails unless the engine reports the whole pull succeeded.
func (d *Deployer) pull(ctx context.Context, ref string) error {
	resp, err := d.eng.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.creds.Header(ref)})
	if err != nil {
		return d.creds.Explain(ref, fmt.Errorf("pull %s: %w", ref, err))
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return d.creds.Explain(ref, fmt.Errorf("pull %s: %w", ref, err))
	}
	return nil
}
