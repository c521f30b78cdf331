package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/hook"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// redeploy pulls the service's image and rolls its containers onto it (rollout): nothing is
// stopped until the pull has succeeded and the replacement exists, the new containers must pass
// the health check, and a failure puts the previous containers back. It returns the outcome.
// The pre-deploy gate runs after the pull and before anything is changed; rec takes the
// pulled image's labels and the gate's answer.
func (d *Deployer) redeploy(ctx context.Context, log *slog.Logger, j job, prog *progress, rec *Record) (string, error) {
	t, err := d.loadTarget(ctx, j)
	if err != nil {
		return OutcomeFailed, err
	}
	// Another berth process sharing STATE_DIR may be deploying this service: wait for it.
	unlock, _, err := d.lockService(ctx, t.p.Name, t.s.Name, true)
	if err != nil {
		return OutcomeFailed, err
	}
	defer unlock()
	// A deploy of this service that a crash or a daemon restart interrupted is repaired first.
	if err := d.reconcileService(ctx, t.p.Name, t.s.Name, !j.dependent); err != nil {
		return OutcomeFailed, err
	}
	if err := d.resolveServiceReferences(ctx, t.p, &t.s); err != nil {
		return OutcomeFailed, err
	}
	resources := d.lookUpResources(ctx, t.p, t.s)
	img, err := d.pullAndInspect(ctx, prog, j, t.s.Image)
	if err != nil {
		return OutcomeFailed, err
	}
	if img.Config != nil {
		rec.ImageLabels = ociLabels(img.Config.Labels)
	}
	existing, err := d.serviceContainers(ctx, t.p.Name, t.s.Name)
	if err != nil {
		return OutcomeFailed, err
	}
	// Until the rollout starts, a deploy that ends leaves the service on its previous image, which
	// the reference the pull moved must name again (retag.go).
	kept := func(outcome string, err error) (string, error) {
		if !j.dependent {
			d.restoreReference(context.WithoutCancel(ctx), prog, t.s.Image, img.ID, runningImages(existing), j.sharedWith)
		}
		return outcome, err
	}
	version := compose.VersionFor(d.version, existing)
	hash, err := compose.ServiceHash(t.s, version)
	if err != nil {
		return kept(OutcomeFailed, err)
	}
	if outcome, err := d.nothingToDo(log, j, t, existing, img.ID, hash); outcome != "" {
		return kept(outcome, err)
	}
	// The gate decides before anything is created or stopped: a veto leaves the service as it was.
	if outcome, err := d.preDeployGate(ctx, log, j, t, img, rec); outcome != "" {
		return kept(outcome, err)
	}
	have := <-resources
	if err := d.ensureNetworks(ctx, t.p, t.s, version, have); err != nil {
		return kept(OutcomeFailed, err)
	}
	if err := d.ensureVolumes(ctx, t.p, t.s, version, have); err != nil {
		return kept(OutcomeFailed, err)
	}
	jn, specs, olds, err := d.planSwaps(log, t, existing, img, hash, version)
	if err != nil {
		return kept(OutcomeFailed, err)
	}
	if !j.dependent && len(j.sharedWith) == 0 {
		jn.Image, jn.ImageID = t.s.Image, img.ID // so undoing the deploy, even after a crash, can retag
	}
	prog.jn = jn
	defer func() { prog.jn = nil }()
	err = d.rollout(ctx, prog, jn, specs, olds, t.health, t.hooks)
	return d.conclude(ctx, log, j, t, prog, jn, img.ID, err)
}

// target is the service a deploy acts on, loaded from its project's files, with the policies
// its labels set.
type target struct {
	p      *types.Project
	s      types.ServiceConfig
	key    string // project/service
	health health.Policy
	gate   gate.Config
	hooks  hook.Set
}

// loadTarget loads j's project afresh when its files changed since the index loaded it (index.go)
// and reads the service's deploy policies; a label with a bad value fails the deploy here.
func (d *Deployer) loadTarget(ctx context.Context, j job) (target, error) {
	p, err := d.projectFor(ctx, j.project)
	if err != nil {
		return target{}, err
	}
	s, ok := p.Services[j.service]
	if !ok {
		return target{}, fault.Errorf(fault.NotFound, "service %s is no longer in project %s", j.service, p.Name)
	}
	if err := compose.CheckSupported(p, s); err != nil {
		return target{}, err
	}
	t := target{p: p, s: s, key: p.Name + "/" + s.Name}
	if t.health, err = health.For(health.Policy{Timeout: d.healthTimeout, Settle: d.healthSettle}, s.Name, s.Labels); err != nil {
		return target{}, err
	}
	if t.gate, err = gate.For(d.gate, s.Labels); err != nil {
		return target{}, err
	}
	if t.hooks, err = hook.For(s.Labels); err != nil {
		return target{}, err
	}
	return t, nil
}

// pullAndInspect pulls ref (not for a dependent service, which compose recreates without a
// pull) and reads the image the engine now has under it.
func (d *Deployer) pullAndInspect(ctx context.Context, prog *progress, j job, ref string) (client.ImageInspectResult, error) {
	if !j.dependent {
		if err := prog.do("pull", ref, func() error { return d.pullPinned(withPullReport(ctx, prog.pullReport(ref)), ref, j.req.Digest) }); err != nil {
			return client.ImageInspectResult{}, err
		}
	}
	img, err := d.eng.ImageInspect(ctx, ref)
	if err != nil {
		return client.ImageInspectResult{}, fmt.Errorf("inspect pulled image %s: %w", ref, err)
	}
	return img, nil
}

// nothingToDo returns the outcome of a deploy that stops before touching anything: the
// service already runs the image with this config, or the image was rolled back on it before.
// It returns "" when the deploy goes on.
func (d *Deployer) nothingToDo(log *slog.Logger, j job, t target, existing []container.Summary, imageID, hash string) (string, error) {
	if d.force {
		return "", nil
	}
	if upToDate(existing, compose.Replicas(t.s), imageID, hash) {
		log.Info("already up to date; nothing touched", "image_id", imageID)
		return OutcomeUpToDate, nil
	}
	if f, failed := d.failedBefore(t.key, imageID); failed && !j.manual && !j.dependent {
		return OutcomeSkipped, fault.Errorf(fault.Conflict, "image %s (%s) was rolled back on this service at %s (%s); berth does not try it again: "+
			"push a fixed image, or run `berth deploy %s` to try this one anyway", shortImageID(imageID), t.s.Image, f.At.Format(time.RFC3339), f.Reason, t.key)
	}
	return "", nil
}

// preDeployGate asks the service's pre-deploy gate, if it has one, about the pulled image and
// notes its answer in rec. It returns "" when the deploy goes on.
func (d *Deployer) preDeployGate(ctx context.Context, log *slog.Logger, j job, t target, img client.ImageInspectResult, rec *Record) (string, error) {
	if !t.gate.Enabled() || j.dependent {
		return "", nil
	}
	log.Info("gate", "kind", cmp.Or(t.gate.Image, t.gate.URL), "timeout", t.gate.Timeout)
	res, err := d.runGate(ctx, t.gate, gate.Request{Project: t.p.Name, Service: t.s.Name, Image: t.s.Image, ImageID: img.ID,
		Repository: j.req.Repository, Tag: j.req.Tag, Digest: j.req.Digest, Source: j.req.Source, Pusher: j.req.Pusher,
		Labels: imageLabels(img)})
	rec.Gate = &res
	if veto := (*gate.Veto)(nil); errors.As(err, &veto) {
		return OutcomeRejected, err
	} else if err != nil {
		return OutcomeFailed, err
	}
	log.Info("gate passed", "took", res.Took)
	return "", nil
}

// planSwaps decides each replica's change — which old container it replaces, the names each
// carries on the way — and builds the create spec of its new container, as compose would.
func (d *Deployer) planSwaps(log *slog.Logger, t target, existing []container.Summary, img client.ImageInspectResult, hash, version string) (*state.Journal, []compose.CreateSpec, []container.Summary, error) {
	startFirst := wantsStartFirst(t.s)
	if why := StartFirstProblem(t.s); why != "" {
		log.Warn("start-first is not possible; stopping the old container first", "why", why)
		startFirst = false
	}
	imageVolumes := map[string]struct{}{}
	if img.Config != nil {
		imageVolumes = img.Config.Volumes
	}
	byNumber := map[int]container.Summary{}
	for _, c := range existing {
		n, _ := strconv.Atoi(c.Labels[compose.LabelNumber])
		byNumber[n] = c
	}
	jn := d.state.NewJournal(t.p.Name, t.s.Name)
	var specs []compose.CreateSpec
	var olds []container.Summary
	for n := 1; n <= compose.Replicas(t.s); n++ {
		name := compose.ContainerName(t.p.Name, t.s, n)
		old, had := byNumber[n]
		replaces := ""
		var inherited []container.MountPoint
		sw := state.Swap{Name: name, Tmp: name, StartFirst: startFirst}
		if had {
			replaces = cmp.Or(t.s.ContainerName, t.s.Name+"-"+strconv.Itoa(n))
			inherited = old.Mounts
			sw.OldID, sw.OldImage, sw.OldRunning = old.ID, old.ImageID, old.State == container.StateRunning
			sw.Tmp = old.ID[:12] + "_" + name
			sw.Backup = backupPrefix + old.ID[:12] + "_" + name
		}
		labels := compose.ContainerLabels(t.s, hash, img.ID, version, n, replaces)
		spec, err := compose.NewCreateSpec(t.p, t.s, n, labels, imageVolumes, inherited)
		if err != nil {
			return nil, nil, nil, err
		}
		jn.Swaps = append(jn.Swaps, sw)
		specs = append(specs, spec)
		olds = append(olds, old)
	}
	return jn, specs, olds, nil
}

// conclude turns the rollout's result into the deploy's outcome: a success cleans up, a
// failure after the commit is finished, any other failure is rolled back and, once containers
// were touched, the image is remembered as failed on the service.
func (d *Deployer) conclude(ctx context.Context, log *slog.Logger, j job, t target, prog *progress, jn *state.Journal, imageID string, err error) (string, error) {
	name := t.s.Name
	if err == nil {
		if err := jn.Finish(); err != nil {
			log.Warn("deploy done but its journal stays", "err", err)
		}
		d.cleanupImages(ctx, log, t.key, jn, imageID)
		d.forgetFailed(log, t.key, imageID)
		return OutcomeDeployed, d.followDependents(ctx, log, j, t.p)
	}
	if jn.Committed {
		// The new containers passed the health check; only removing the old ones failed: finish that.
		log.Warn("removing the replaced containers failed; finishing", "err", err)
		if fwdErr := prog.do("remove", name, func() error { return d.rollForward(context.WithoutCancel(ctx), jn) }); fwdErr != nil {
			return OutcomeFailed, fmt.Errorf("%w; finishing failed too: %v (berth repairs it at its next deploy of %s or its next start)", err, fwdErr, name)
		}
		if err := jn.Finish(); err != nil {
			log.Warn("deploy done but its journal stays", "err", err)
		}
		return OutcomeDeployed, nil
	}
	log.Error("rollout failed; rolling back", "err", err)
	touched := prog.touched
	if rbErr := prog.do("rollback", name, func() error { return d.rollBackVerified(ctx, jn, t.health) }); rbErr != nil {
		return OutcomeFailed, fmt.Errorf("%w; rolling back failed too: %v (berth repairs it at its next deploy of %s or its next start)", err, rbErr, name)
	}
	if !j.dependent {
		d.restoreReference(context.WithoutCancel(ctx), prog, t.s.Image, imageID, previousImages(jn), j.sharedWith)
	}
	if err := jn.Finish(); err != nil {
		log.Warn("rolled back but the journal stays", "err", err)
	}
	if !touched {
		return OutcomeFailed, err
	}
	if !j.dependent {
		d.markFailed(log, t.key, imageID, err)
	}
	return OutcomeRolledBack, err
}
