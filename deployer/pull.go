package deployer

import (
	"context"
	"errors"
	"fmt"
	"regexp"
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
	unlimited(ctx, func() { err = d.pullRetrying(ctx, ref) })
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		err = fmt.Errorf("pull %s did not finish within %s (PULL_TIMEOUT): the registry may be unreachable or stuck: %w", ref, d.pullTimeout, ctx.Err())
	}
	return err
}

// pullAttempts bounds how often a pull is tried when the registry answers with a server error:
// registries and the proxies before them fail now and then, and a failed pull has changed
// nothing on the host, so trying again is safe. Any other error ends the pull at once.
const pullAttempts = 3

// pullRetrying tries pullOnce up to pullAttempts times while the registry answers 5xx, waiting
// 1 s, then 2 s, between tries.
func (d *Deployer) pullRetrying(ctx context.Context, ref string) error {
	var err error
	for attempt := 1; ; attempt++ {
		if err = d.pullOnce(ctx, ref); err == nil || attempt == pullAttempts || !registryServerError(err) {
			return err
		}
		wait := time.Duration(attempt) * time.Second
		d.log.Warn("registry answered a server error; pulling again", "image", ref, "attempt", attempt, "wait", wait, "err", err)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// serverErrorText matches how the engines report a registry's 5xx answer: "received unexpected
// HTTP status: 500 Internal Server Error" (classic store), "unexpected status from HEAD request
// to …: 503 Service Unavailable" (containerd store), "error parsing HTTP 502 response body".
var serverErrorText = regexp.MustCompile(`(?i)\b50[0-4] (internal server error|bad gateway|service unavailable|gateway timeout)\b|\bHTTP 50[0-4] response\b`)

// registryServerError says whether a pull failed on a registry's server error, not on a name,
// a credential or the network.
func registryServerError(err error) bool {
	return serverErrorText.MatchString(err.Error())
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
