package swarm

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/distribution/reference"
	swarmapi "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Update asks for one service to move to a pushed image.
type Update struct {
	Service string       // the service's id
	Image   registry.Ref // the pushed repository:tag
	Digest  string       // the pushed digest; "" resolves the tag on its registry
	Auth    string       // X-Registry-Auth for the image's registry; "" keeps the service's own
	Force   bool         // try a digest even if the service rolled back from it before
	// RolledBack says whether the service rolled back from digest before, and when and why:
	// such a digest is not tried again unless Force. Nil means it never did.
	RolledBack func(digest string) (at time.Time, reason string, ok bool)
}

// Outcome is how an update ended; the values are the deploy record's.
type Outcome string

// The outcomes of an update.
const (
	Deployed   Outcome = "deployed"    // every task runs the pushed digest
	UpToDate   Outcome = "up-to-date"  // the service ran it already; nothing was touched
	Failed     Outcome = "failed"      // it could not be updated, or not rolled back
	RolledBack Outcome = "rolled-back" // the update failed and the previous version runs again
	Skipped    Outcome = "skipped"     // the service rolled back from this digest before
)

// Result is what an update did.
type Result struct {
	Outcome Outcome
	Digest  string // the digest the service was moved to, or found at; "" when it was not learned
	Steps   []Step
	// Sent says berth sent the update itself, rather than finding it done or following one
	// already under way: a rollback or a success is then this update's to remember.
	Sent bool
}

// Step is one engine action of an update, timed.
type Step struct {
	Name  string // resolve, update, converge, rollback, rolled back
	At    time.Time
	Took  time.Duration
	Error string
}

// run is one update under way, collecting its Result.
type run struct {
	b   *Backend
	log *slog.Logger
	res Result
}

func (r *run) step(name string, at time.Time, err error) {
	s := Step{Name: name, At: at, Took: time.Since(at)}
	if err != nil {
		s.Error = err.Error()
	}
	r.res.Steps = append(r.res.Steps, s)
}

// Update moves a swarm service to the pushed image, pinned by digest, and waits for the swarm
// to converge. The swarm applies the service's own update_config; on failure berth lets (or
// asks) the swarm roll back to the previous spec.
func (b *Backend) Update(ctx context.Context, log *slog.Logger, u Update) (Result, error) {
	r := &run{b: b, log: log}
	outcome, err := r.update(ctx, u)
	r.res.Outcome = outcome
	return r.res, err
}

func (r *run) update(ctx context.Context, u Update) (Outcome, error) {
	svc, err := r.b.inspect(ctx, u.Service)
	if err != nil {
		return Failed, err
	}
	cur, ok := serviceImage(svc)
	if !ok || !registry.TracksTag(registry.Ref{Name: cur.Name, Tag: cur.Tag}, u.Image) {
		return Failed, fault.Errorf(fault.Conflict, "swarm service %s no longer runs %s; nothing updated", svc.Spec.Name, u.Image.Familiar())
	}
	digest, err := r.resolve(ctx, u)
	if err != nil {
		return Failed, err
	}
	r.res.Digest = digest
	if cur.Digest == digest {
		switch state := updateState(svc); state {
		case "", swarmapi.UpdateStateCompleted:
			r.log.Info("swarm service already runs the pushed digest; nothing to do", "digest", digest)
			return UpToDate, nil
		case swarmapi.UpdateStateUpdating, swarmapi.UpdateStatePaused:
			// A redelivery while (or after) this very update ran: follow it instead of starting another.
			r.log.Info("swarm service is already being updated to the pushed digest; waiting for it", "digest", digest, "state", state)
			return r.settle(ctx, svc.ID)
		}
	}
	if u.RolledBack != nil {
		if at, reason, failed := u.RolledBack(digest); failed && !u.Force {
			return Skipped, fault.Errorf(fault.Conflict, "%s (%s) was rolled back on this service at %s (%s); berth does not try it again: "+
				"push a fixed image, or run `docker service update --image %s@%s %s` on a manager to try this one anyway",
				digest, u.Image.Familiar(), at.Format(time.RFC3339), reason, u.Image.Familiar(), digest, svc.Spec.Name)
		}
	}
	target, err := pinnedFamiliar(u.Image, digest)
	if err != nil {
		return Failed, err
	}
	spec := svc.Spec
	from := spec.TaskTemplate.ContainerSpec.Image
	cs := *spec.TaskTemplate.ContainerSpec
	cs.Image = target
	spec.TaskTemplate.ContainerSpec = &cs
	opts := client.ServiceUpdateOptions{Version: svc.Version, Spec: spec, EncodedRegistryAuth: u.Auth}
	if u.Auth == "" {
		// Keep the credentials the service was deployed with (docker stack deploy --with-registry-auth).
		opts.RegistryAuthFrom = swarmapi.RegistryAuthFromSpec
	}
	r.log.Info("update swarm service", "swarm_service", svc.Spec.Name, "target", target, "from", from, "version", svc.Version.Index)
	at := time.Now()
	res, err := r.b.eng.ServiceUpdate(ctx, svc.ID, opts)
	r.step("update", at, err)
	if err != nil {
		return Failed, fmt.Errorf("update swarm service %s to %s: %w", svc.Spec.Name, target, err)
	}
	for _, w := range res.Warnings {
		r.log.Warn("swarm service update", "warning", w)
	}
	r.res.Sent = true
	return r.settle(ctx, svc.ID)
}

// resolve is the digest to move the service to: the pushed one, or the one the registry
// says the tag names now.
func (r *run) resolve(ctx context.Context, u Update) (string, error) {
	if u.Digest != "" {
		return u.Digest, nil
	}
	at := time.Now()
	// The engine asks the registry on berth's behalf: a registry that never answers must not
	// hold this deploy (and the service's queue) for ever.
	rctx, cancel := context.WithTimeout(ctx, r.b.opts.RegistryTimeout)
	stop := context.AfterFunc(r.b.opts.Shutdown, cancel)
	res, err := r.b.eng.DistributionInspect(rctx, u.Image.String(), client.DistributionInspectOptions{EncodedRegistryAuth: u.Auth})
	timedOut := errors.Is(rctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	stop()
	cancel()
	if err != nil && timedOut {
		err = fmt.Errorf("the registry did not answer within %s (REGISTRY_TIMEOUT): %w (%v)", r.b.opts.RegistryTimeout, context.DeadlineExceeded, err)
	}
	r.step("resolve", at, err)
	if err != nil && u.Auth == "" {
		return "", unavailable("resolve the digest of "+u.Image.Familiar()+
			" (berth has no credentials for its registry; if it needs some, set REGISTRY_AUTH_CONFIG)", err)
	}
	if err != nil {
		return "", unavailable("resolve the digest of "+u.Image.Familiar(), err)
	}
	return res.Descriptor.Digest.String(), nil
}

// settle waits for an update to converge; a failed update is rolled back by the swarm, on its
// own when update_config.failure_action is rollback, at berth's request otherwise.
func (r *run) settle(ctx context.Context, id string) (Outcome, error) {
	at := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, r.b.opts.Timeout)
	defer cancel()
	result, why, err := r.b.converge(waitCtx, id)
	r.step("converge", at, err)
	switch {
	case err == nil && result == convergedUpdate:
		r.log.Info("swarm service converged on the new image")
		return Deployed, nil
	case err == nil && result == convergedRollback:
		// The swarm rolled back by itself (failure_action: rollback).
		return r.confirmRollback(ctx, id, fault.Errorf(fault.Internal, "the update failed and the swarm rolled it back: %s", cmp.Or(why, "no reason given")))
	}
	if ctx.Err() != nil {
		return Failed, ctx.Err()
	}
	r.log.Error("swarm service update failed; rolling back", "err", err)
	at = time.Now()
	rbErr := r.b.requestRollback(context.WithoutCancel(ctx), id)
	r.step("rollback", at, rbErr)
	if rbErr != nil {
		return Failed, fmt.Errorf("%w; and the rollback could not start: %v", err, rbErr)
	}
	return r.confirmRollback(ctx, id, err)
}

// confirmRollback waits for a rollback to finish with the previous version running again.
func (r *run) confirmRollback(ctx context.Context, id string, cause error) (Outcome, error) {
	waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.b.opts.Timeout)
	defer cancel()
	at := time.Now()
	result, _, err := r.b.converge(waitCtx, id)
	r.step("rolled back", at, err)
	if err != nil || result != convergedRollback {
		return Failed, fmt.Errorf("%w; the rollback did not converge either: %v", cause, cmp.Or[error](err, fmt.Errorf("state %s", result)))
	}
	r.log.Warn("swarm service rolled back to its previous version", "cause", cause)
	return RolledBack, cause
}

// requestRollback asks the swarm to go back to the service's previous spec, unless it
// already is rolling back.
func (b *Backend) requestRollback(ctx context.Context, id string) error {
	svc, err := b.inspect(ctx, id)
	if err != nil {
		return err
	}
	switch updateState(svc) {
	case swarmapi.UpdateStateRollbackStarted, swarmapi.UpdateStateRollbackCompleted:
		return nil
	}
	if svc.PreviousSpec == nil {
		return fault.Errorf(fault.Conflict, "swarm service %s has no previous version to roll back to", svc.Spec.Name)
	}
	_, err = b.eng.ServiceUpdate(ctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: svc.Spec, Rollback: "previous"})
	return err
}

// convergence is how a wait for a service ended.
type convergence string

const (
	convergedUpdate   convergence = "updated"     // the update completed and every task runs the new spec
	convergedRollback convergence = "rolled back" // a rollback completed and every task runs the previous spec
)

// converge polls the service until its update (or rollback) completes with every desired task
// running its spec's image, or fails. why is the swarm's reason for a rollback it started.
// Tasks with a healthcheck count as running only once healthy: the swarm keeps them
// "starting" until then.
func (b *Backend) converge(ctx context.Context, id string) (_ convergence, why string, _ error) {
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		svc, err := b.inspect(ctx, id)
		if err != nil {
			return "", why, err
		}
		msg := ""
		if svc.UpdateStatus != nil {
			msg = svc.UpdateStatus.Message
		}
		switch state := updateState(svc); state {
		case swarmapi.UpdateStateRollbackStarted:
			why = msg
		case swarmapi.UpdateStatePaused:
			return "", why, fault.Errorf(fault.Internal, "the swarm paused the update: %s", msg)
		case swarmapi.UpdateStateRollbackPaused:
			return "", why, fault.Errorf(fault.Internal, "the swarm paused the rollback: %s", msg)
		case swarmapi.UpdateStateCompleted, swarmapi.UpdateStateRollbackCompleted:
			done, failed, err := b.tasksConverged(ctx, svc)
			switch {
			case err != nil:
				return "", why, err
			case failed != "" && state == swarmapi.UpdateStateCompleted:
				// failure_action: continue lets the update complete over failing tasks.
				return "", why, fault.Errorf(fault.Internal, "a task of the new version failed: %s", failed)
			case done && state == swarmapi.UpdateStateCompleted:
				return convergedUpdate, why, nil
			case done:
				return convergedRollback, why, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", why, fault.Errorf(fault.Unavailable, "swarm service %s did not converge in time (%s): %w", svc.Spec.Name, cmp.Or(msg, "no update status"), ctx.Err())
		case <-tick.C:
		}
	}
}

// tasksConverged says whether every task the service wants runs its spec's image, and names
// a task of that image that failed, if any.
func (b *Backend) tasksConverged(ctx context.Context, svc swarmapi.Service) (done bool, failed string, err error) {
	res, err := b.eng.TaskList(ctx, client.TaskListOptions{Filters: client.Filters{}.Add("service", svc.ID)})
	if err != nil {
		return false, "", unavailable("list tasks of "+svc.Spec.Name, err)
	}
	want := svc.Spec.TaskTemplate.ContainerSpec.Image
	running := 0
	done = true
	for _, t := range res.Items {
		image := ""
		if t.Spec.ContainerSpec != nil {
			image = t.Spec.ContainerSpec.Image
		}
		if image == want && (t.Status.State == swarmapi.TaskStateFailed || t.Status.State == swarmapi.TaskStateRejected) && failed == "" {
			failed = fmt.Sprintf("task %s.%d: %s %s", svc.Spec.Name, t.Slot, t.Status.State, cmp.Or(t.Status.Err, t.Status.Message))
		}
		if t.DesiredState != swarmapi.TaskStateRunning {
			continue
		}
		if image != want || t.Status.State != swarmapi.TaskStateRunning {
			done = false
			continue
		}
		running++
	}
	if m := svc.Spec.Mode.Replicated; m != nil && m.Replicas != nil && uint64(running) != *m.Replicas {
		done = false
	}
	return done, failed, nil
}

// inspect reads a service that runs containers.
func (b *Backend) inspect(ctx context.Context, id string) (swarmapi.Service, error) {
	res, err := b.eng.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return swarmapi.Service{}, unavailable("inspect swarm service "+id, err)
	}
	if res.Service.Spec.TaskTemplate.ContainerSpec == nil {
		return swarmapi.Service{}, fault.Errorf(fault.Invalid, "swarm service %s runs no containers", res.Service.Spec.Name)
	}
	return res.Service, nil
}

func updateState(svc swarmapi.Service) swarmapi.UpdateState {
	if svc.UpdateStatus == nil {
		return ""
	}
	return svc.UpdateStatus.State
}

// pinnedFamiliar is repository:tag@digest in the short form `docker stack deploy` writes.
func pinnedFamiliar(ref registry.Ref, digest string) (string, error) {
	pinned, err := reference.ParseNormalizedNamed(registry.Ref{Name: ref.Name, Tag: ref.Tag}.String() + "@" + digest)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "pushed digest %q is not a valid digest: %w", digest, err)
	}
	return reference.FamiliarString(pinned), nil
}
