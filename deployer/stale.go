package deployer

import (
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/state"
)

// A delivery re-sent later (a new delivery id, so the handler's duplicate check lets it in)
// must not put a service back on an older image: berth remembers, per service, the push it
// last deployed, and skips a push of the same tag that was pushed before it. Push times are
// the sender's own clock, so they compare only within one repository and tag; a push with no
// time is never judged stale.

// stale says why j's push is older than the one its service last deployed, or nil when it may
// deploy. Deploys by hand (berth deploy) and dependents' recreations are never stale.
func (d *Deployer) stale(j job) error {
	if j.manual || j.dependent || j.req.PushedAt.IsZero() {
		return nil
	}
	last, ok := d.deployed.Get(j.projectName + "/" + j.service)
	if !ok || last.Repository != j.image.Name || last.Tag != j.req.Tag || !j.req.PushedAt.Before(last.PushedAt) {
		return nil
	}
	if j.req.Digest != "" && j.req.Digest == last.Digest {
		return nil // the very image that runs: the deploy finds it up to date
	}
	return fault.Errorf(fault.Conflict, "this push of %s:%s (%s, pushed %s) is older than the one %s last deployed (%s, pushed %s), "+
		"so it is a re-sent or late delivery; nothing was changed. To go back to it on purpose, run `berth deploy %s/%s --image %s`",
		j.req.Repository, j.req.Tag, orUnknown(j.req.Digest), j.req.PushedAt.Format(time.RFC3339), j.service, orUnknown(last.Digest),
		last.PushedAt.Format(time.RFC3339), j.projectName, j.service, pinnedOrTag(j))
}

// remember records j's push as the one its service last deployed, unless it has no push time
// or is older than the one recorded; a failed write only weakens the stale check, so it is logged.
func (d *Deployer) remember(j job, outcome string) {
	if (outcome != OutcomeDeployed && outcome != OutcomeUpToDate) || j.dependent || j.req.PushedAt.IsZero() {
		return
	}
	key := j.projectName + "/" + j.service
	if last, ok := d.deployed.Get(key); ok && last.Repository == j.image.Name && last.Tag == j.req.Tag && j.req.PushedAt.Before(last.PushedAt) {
		return
	}
	dp := state.DeployedPush{Repository: j.image.Name, Tag: j.req.Tag, Digest: j.req.Digest, PushedAt: j.req.PushedAt}
	if err := d.deployed.Set(key, dp); err != nil {
		d.log.Warn("deployed push not recorded; a re-sent older delivery may not be recognised", "deploy", j.id, "service", key, "err", err)
	}
}

// openDeployed opens STATE_DIR's record of deployed pushes; when it cannot be read berth logs
// why and keeps the record in memory.
func (d *Deployer) openDeployed() *state.DeployedPushes {
	p, err := d.state.DeployedPushes()
	if err == nil {
		return p
	}
	d.log.Error("deployed pushes cannot be read; older re-sent deliveries are recognised only from now on", "err", err)
	p, _ = state.New("").DeployedPushes()
	return p
}

func orUnknown(digest string) string {
	if digest == "" {
		return "digest unknown"
	}
	return digest
}

// pinnedOrTag is the reference `berth deploy` takes to deploy j's push on purpose.
func pinnedOrTag(j job) string {
	ref := j.req.Repository + ":" + j.req.Tag
	if j.req.Digest != "" {
		ref += "@" + j.req.Digest
	}
	return ref
}
