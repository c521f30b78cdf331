package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/hook"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
)

// Defaults of the rollout settings, used when Options leave them zero.
const (
	DefaultKeepImages = 2
	DefaultRetryFor   = 10 * time.Minute
)

// rollout runs the journaled steps of one service deploy. Stop-first (compose's order): create
// the new container under a temporary name, stop the old one and set it aside under a backup
// name, give the new one the final name and start it, health-check, then remove the old one.
// Start-first: create and start the new one beside the old one, health-check, take the old one
// off its networks, stop and remove it, then give the new one the final name. Until the old
// containers are being removed (Committed) a failure or crash is undone. Lifecycle hooks are
// steps of their own, before the commit: pre-stop in the old container just before it is
// stopped (start-first: once the new one passed the health check), post-start in the new one
// right after its start, before the health check; a failing hook is undone like any step.
func (d *Deployer) rollout(ctx context.Context, prog *progress, jn *state.Journal, specs []compose.CreateSpec, olds []container.Summary, g health.Policy, hooks hook.Set) error {
	for i := range jn.Swaps {
		if err := d.bringUp(ctx, prog, &jn.Swaps[i], specs[i], hooks); err != nil {
			return err
		}
	}
	for _, sw := range jn.Swaps {
		display := cmp.Or(sw.Tmp, sw.Name)
		if !sw.StartFirst {
			display = sw.Name
		}
		// A one-shot service (its old container had exited) may exit 0; anything else must run.
		oneShot := sw.OldID != "" && !sw.OldRunning
		if err := prog.do("health", display, func() error { return health.Wait(ctx, d.eng, sw.NewID, display, g, oneShot) }); err != nil {
			return err
		}
	}
	for _, sw := range jn.Swaps {
		if sw.StartFirst {
			if err := d.preStop(ctx, prog, hooks, sw); err != nil {
				return err
			}
		}
	}
	jn.Committed = true
	for i, sw := range jn.Swaps {
		if err := d.retire(ctx, prog, sw, olds[i]); err != nil {
			return err
		}
	}
	return nil
}

// bringUp creates sw's new container and starts it: beside the old one (start-first, or a new
// replica, whose Tmp is its final name), or in its place once the old one is stopped and set
// aside (stop-first).
func (d *Deployer) bringUp(ctx context.Context, prog *progress, sw *state.Swap, spec compose.CreateSpec, hooks hook.Set) error {
	if err := prog.do("create", sw.Tmp, func() error {
		id, err := d.create(ctx, sw.Tmp, spec)
		sw.NewID = id
		return err
	}); err != nil {
		return err
	}
	if sw.OldID == "" || sw.StartFirst {
		if err := prog.do("start", sw.Tmp, func() error { return d.start(ctx, sw.NewID, sw.Tmp) }); err != nil {
			return err
		}
		return d.postStart(ctx, prog, hooks, sw.NewID, sw.Tmp)
	}
	if err := d.preStop(ctx, prog, hooks, *sw); err != nil {
		return err
	}
	steps := []struct {
		name, ctr string
		fn        func() error
	}{
		{"stop", sw.Name, func() error { return d.stop(ctx, sw.OldID, sw.Name) }},
		{"set-aside", sw.Backup, func() error { return d.rename(ctx, sw.OldID, sw.Name, sw.Backup) }},
		{"rename", sw.Name, func() error { return d.rename(ctx, sw.NewID, sw.Tmp, sw.Name) }},
		{"start", sw.Name, func() error { return d.start(ctx, sw.NewID, sw.Name) }},
	}
	for i, st := range steps {
		do := prog.do
		if i == 0 {
			do = prog.doBesideJournal
		}
		if err := do(st.name, st.ctr, st.fn); err != nil {
			return err
		}
	}
	return d.postStart(ctx, prog, hooks, sw.NewID, sw.Name)
}

// doBesideJournal is do for a step during which a crash needs nothing its journal write adds:
// stop-first's stop, which adds the new container's id, and until the rename a repair finds
// that container by its temporary name. The write (a sync) then runs beside the step instead of
// before it, off the path to the new version; the step counts as done once both are.
func (p *progress) doBesideJournal(name, ctr string, fn func() error) error {
	jn := p.jn
	if jn == nil {
		return p.do(name, ctr, fn)
	}
	written := make(chan error, 1)
	go func() { written <- jn.Write(name) }()
	p.jn = nil // do must not write it too
	err := p.do(name, ctr, func() error { return errors.Join(fn(), <-written) })
	p.jn = jn
	return err
}

// retire removes sw's old container once the deploy is committed; start-first stops it first
// (off its networks, so DNS names only the new one) and then gives the new one its name.
func (d *Deployer) retire(ctx context.Context, prog *progress, sw state.Swap, old container.Summary) error {
	if sw.OldID == "" {
		return nil
	}
	if sw.StartFirst {
		if err := prog.do("stop", sw.Name, func() error {
			d.leaveNetworks(ctx, old)
			return d.stop(ctx, sw.OldID, sw.Name)
		}); err != nil {
			return err
		}
	}
	if err := prog.do("remove", cmp.Or(sw.Backup, sw.Name), func() error { return d.removeContainer(ctx, sw.OldID) }); err != nil {
		return err
	}
	if sw.StartFirst {
		return prog.do("rename", sw.Name, func() error { return d.rename(ctx, sw.NewID, sw.Tmp, sw.Name) })
	}
	return nil
}

// preStop runs the service's pre-stop hook, if it declares one, in the running old container
// of sw as the journaled step "pre-stop"; a failure leaves that container serving.
func (d *Deployer) preStop(ctx context.Context, prog *progress, hooks hook.Set, sw state.Swap) error {
	if hooks.PreStop == "" || sw.OldID == "" || !sw.OldRunning {
		return nil
	}
	return prog.do("pre-stop", sw.Name, func() error {
		if err := hook.Run(ctx, d.eng, "pre-stop", sw.OldID, hooks.PreStop, hooks.Timeout); err != nil {
			return fmt.Errorf("%s: %w; the old container was not stopped", sw.Name, err)
		}
		return nil
	})
}

// postStart runs the service's post-start hook, if it declares one, in the new container as
// the journaled step "post-start", before the health check; a failure rolls the deploy back.
func (d *Deployer) postStart(ctx context.Context, prog *progress, hooks hook.Set, id, name string) error {
	if hooks.PostStart == "" {
		return nil
	}
	return prog.do("post-start", name, func() error {
		if err := hook.Run(ctx, d.eng, "post-start", id, hooks.PostStart, hooks.Timeout); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// StartFirstProblem says why a service that asks for deploy.update_config.order: start-first
// cannot have it, or "" when it can (or does not ask). Two containers of one replica cannot
// run side by side when they would need the same fixed host port or the same container_name;
// berth then stops the old one first, as compose does, and `berth check` reports this.
func StartFirstProblem(s types.ServiceConfig) string {
	if !wantsStartFirst(s) {
		return ""
	}
	if s.ContainerName != "" {
		return fmt.Sprintf("service %s sets container_name %s, which two containers cannot share; start-first falls back to stop-first", s.Name, s.ContainerName)
	}
	for _, p := range s.Ports {
		if p.Published != "" && p.Published != "0" {
			return fmt.Sprintf("service %s publishes fixed host port %s, which two containers cannot bind; start-first falls back to stop-first "+
				"(publish an ephemeral port or put a reverse proxy in front)", s.Name, p.Published)
		}
	}
	return ""
}

func wantsStartFirst(s types.ServiceConfig) bool {
	return s.Deploy != nil && s.Deploy.UpdateConfig != nil && s.Deploy.UpdateConfig.Order == "start-first"
}

// upToDate says whether every replica of the service already runs imageID with the config
// hash berth would give it: a redelivered push then changes nothing.
func upToDate(existing []container.Summary, replicas int, imageID, hash string) bool {
	if len(existing) != replicas {
		return false
	}
	for _, c := range existing {
		if c.ImageID != imageID || c.Labels[compose.LabelConfigHash] != hash || c.State != container.StateRunning {
			return false
		}
	}
	return true
}
