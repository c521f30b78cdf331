package deployer

import (
	"context"
	"errors"
	"fmt"
	"time"

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

// Defaults of the registry bounds, used when Options leave them zero.
const (
	DefaultPullTimeout     = 10 * time.Minute
	DefaultRegistryTimeout = 30 * time.Second
)

// pull fetches ref and fails unless the engine reports the whole pull succeeded. It waits on
// the registry, not on the host, so it gives up its deploy slot meanwhile (queue.unlimited):
// a stuck pull holds up its own service only. It ends after PullTimeout, or at shutdown.
func (d *Deployer) pull(ctx context.Context, ref string) error {
	ctx, cancel := d.registryContext(ctx, d.pullTimeout)
	defer cancel()
	var err error
	unlimited(ctx, func() { err = d.pullOnce(ctx, ref) })
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("pull %s did not finish within %s (PULL_TIMEOUT): the registry may be unreachable or stuck: %w", ref, d.pullTimeout, ctx.Err())
	}
	return err
}

func (d *Deployer) pullOnce(ctx context.Context, ref string) error {
	resp, err := d.eng.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: d.creds.Header(ref)})
	if err != nil {
		return d.creds.Explain(ref, fmt.Errorf("pull %s: %w", ref, err))
	}
	defer resp.Close()
	if err := followPull(ctx, resp); err != nil {
		return d.creds.Explain(ref, fmt.Errorf("pull %s: %w", ref, err))
	}
	return nil
}

// registryContext bounds a call that waits on a registry: it ends after timeout, or when
// berth shuts down, whichever comes first.
func (d *Deployer) registryContext(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(d.shutdown, cancel)
	return ctx, func() { stop(); cancel() }
}
