package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/hook"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// redeploy pulls the service's image and rolls its containers onto it (rollout): nothing is
// stopped until the pull has succeeded and the replacement exists, the new containers must pass
// the health check, and a failure puts the previous containers back. It returns the outcome.
// The pre-deploy gate runs after the pull and before anything is changed; rec takes the
// pulled image's labels and the gate's answer.
func (d *Deployer) redeploy(ctx context.Context, log *slog.Logger, j job, prog *progress, rec *Record) (string, error) {
	p, err := compose.Load(ctx, j.project)
	if err != nil {
		return OutcomeFailed, err
	}
	s, ok := p.Services[j.service]
	if !ok {
		return OutcomeFailed, fault.Errorf(fault.NotFound, "service %s is no longer in project %s", j.service, p.Name)
	}
	if err := compose.CheckSupported(p, s); err != nil {
		return OutcomeFailed, err
	}
	g, err := health.For(health.Policy{Timeout: d.healthTimeout, Settle: d.healthSettle}, s.Name, s.Labels)
	if err != nil {
		return OutcomeFailed, err
	}
	pre, err := gate.For(d.gate, s.Labels)
	if err != nil {
		return OutcomeFailed, err
	}
	hooks, err := hook.For(s.Labels)
	if err != nil {
		return OutcomeFailed, err
	}
	// Another berth process sharing STATE_DIR may be deploying this service: wait for it.
	unlock, _, err := d.lockService(ctx, p.Name, s.Name, true)
	if err != nil {
		return OutcomeFailed, err
	}
	defer unlock()
	// A deploy of this service that a crash or a daemon restart interrupted is repaired first.
	if err := d.reconcileService(ctx, p.Name, s.Name); err != nil {
		return OutcomeFailed, err
	}
	if err := d.resolveServiceReferences(ctx, p, &s); err != nil {
		return OutcomeFailed, err
	}
	if !j.dependent {
		if err := prog.do("pull", s.Image, func() error { return d.pullPinned(ctx, s.Image, j.req.Digest) }); err != nil {
			return OutcomeFailed, err
		}
	}
	img, err := d.eng.ImageInspect(ctx, s.Image)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("inspect pulled image %s: %w", s.Image, err)
	}
	imageVolumes := map[string]struct{}{}
	if img.Config != nil {
		imageVolumes = img.Config.Volumes
		rec.ImageLabels = ociLabels(img.Config.Labels)
	}
	existing, err := d.serviceContainers(ctx, p.Name, s.Name)
	if err != nil {
		return OutcomeFailed, err
	}
	version := compose.VersionFor(d.version, existing)
	hash, err := compose.ServiceHash(s, version)
	if err != nil {
		return OutcomeFailed, err
	}
	if !d.force && upToDate(existing, compose.Replicas(s), img.ID, hash) {
		log.Info("already up to date; nothing touched", "image_id", img.ID)
		return OutcomeUpToDate, nil
	}
	key := p.Name + "/" + s.Name
	if f, failed := d.failedBefore(key, img.ID); failed && !d.force && !j.manual && !j.dependent {
		return OutcomeSkipped, fault.Errorf(fault.Conflict, "image %s (%s) was rolled back on this service at %s (%s); berth does not try it again: "+
			"push a fixed image, or run `berth deploy %s` to try this one anyway", shortImageID(img.ID), s.Image, f.At.Format(time.RFC3339), f.Reason, key)
	}
	// The gate decides before anything is created or stopped: a veto leaves the service as it was.
	if pre.Enabled() && !j.dependent {
		log.Info("gate", "kind", cmp.Or(pre.Image, pre.URL), "timeout", pre.Timeout)
		res, err := d.runGate(ctx, pre, gate.Request{Project: p.Name, Service: s.Name, Image: s.Image, ImageID: img.ID,
			Repository: j.req.Repository, Tag: j.req.Tag, Digest: j.req.Digest, Source: j.req.Source, Pusher: j.req.Pusher,
			Labels: imageLabels(img)})
		rec.Gate = &res
		if veto := (*gate.Veto)(nil); errors.As(err, &veto) {
			return OutcomeRejected, err
		} else if err != nil {
			return OutcomeFailed, err
		}
		log.Info("gate passed", "took", res.Took)
	}
	if err := d.ensureNetworks(ctx, p, s, version); err != nil {
		return OutcomeFailed, err
	}
	if err := d.ensureVolumes(ctx, p, s, version); err != nil {
		return OutcomeFailed, err
	}
	startFirst := wantsStartFirst(s)
	if why := StartFirstProblem(s); why != "" {
		log.Warn("start-first is not possible; stopping the old container first", "why", why)
		startFirst = false
	}

	byNumber := map[int]container.Summary{}
	for _, c := range existing {
		n, _ := strconv.Atoi(c.Labels[compose.LabelNumber])
		byNumber[n] = c
	}
	jn := d.state.NewJournal(p.Name, s.Name)
	var specs []compose.CreateSpec
	var olds []container.Summary
	for n := 1; n <= compose.Replicas(s); n++ {
		name := compose.ContainerName(p.Name, s, n)
		old, had := byNumber[n]
		replaces := ""
		var inherited []container.MountPoint
		sw := state.Swap{Name: name, Tmp: name, StartFirst: startFirst}
		if had {
			replaces = s.Name + "-" + strconv.Itoa(n)
			if s.ContainerName != "" {
				replaces = s.ContainerName
			}
			inherited = old.Mounts
			sw.OldID, sw.OldImage, sw.OldRunning = old.ID, old.ImageID, old.State == container.StateRunning
			sw.Tmp = old.ID[:12] + "_" + name
			sw.Backup = backupPrefix + old.ID[:12] + "_" + name
		}
		labels := compose.ContainerLabels(s, hash, img.ID, version, n, replaces)
		spec, err := compose.NewCreateSpec(p, s, n, labels, imageVolumes, inherited)
		if err != nil {
			return OutcomeFailed, err
		}
		jn.Swaps = append(jn.Swaps, sw)
		specs = append(specs, spec)
		olds = append(olds, old)
	}
	prog.jn = jn
	defer func() { prog.jn = nil }()

	err = d.rollout(ctx, prog, jn, specs, olds, g, hooks)
	if err == nil {
		if err := jn.Finish(); err != nil {
			log.Warn("deploy done but its journal stays", "err", err)
		}
		d.cleanupImages(ctx, log, key, jn, img.ID)
		d.forgetFailed(log, key, img.ID)
		return OutcomeDeployed, d.followDependents(ctx, log, j, p)
	}
	if jn.Committed {
		// The new containers passed the health check; only removing the old ones failed: finish that.
		log.Warn("removing the replaced containers failed; finishing", "err", err)
		if fwdErr := prog.do("remove", s.Name, func() error { return d.rollForward(context.WithoutCancel(ctx), jn) }); fwdErr != nil {
			return OutcomeFailed, fmt.Errorf("%w; finishing failed too: %v (berth repairs it at its next deploy of %s or its next start)", err, fwdErr, s.Name)
		}
		if err := jn.Finish(); err != nil {
			log.Warn("deploy done but its journal stays", "err", err)
		}
		return OutcomeDeployed, nil
	}
	log.Error("rollout failed; rolling back", "err", err)
	touched := prog.touched
	if rbErr := prog.do("rollback", s.Name, func() error { return d.rollBackVerified(ctx, jn, g) }); rbErr != nil {
		return OutcomeFailed, fmt.Errorf("%w; rolling back failed too: %v (berth repairs it at its next deploy of %s or its next start)", err, rbErr, s.Name)
	}
	if err := jn.Finish(); err != nil {
		log.Warn("rolled back but the journal stays", "err", err)
	}
	if !touched {
		return OutcomeFailed, err
	}
	if !j.dependent {
		d.markFailed(log, key, img.ID, err)
	}
	return OutcomeRolledBack, err
}

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
		sw := &jn.Swaps[i]
		// A new replica (no old container) makes room for nobody: its Tmp is its final name.
		if err := prog.do("create", sw.Tmp, func() error {
			id, err := d.create(ctx, sw.Tmp, specs[i])
			sw.NewID = id
			return err
		}); err != nil {
			return err
		}
		if sw.OldID == "" || sw.StartFirst {
			if err := prog.do("start", sw.Tmp, func() error { return d.start(ctx, sw.NewID, sw.Tmp) }); err != nil {
				return err
			}
			if err := d.postStart(ctx, prog, hooks, sw.NewID, sw.Tmp); err != nil {
				return err
			}
			continue
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
		for _, st := range steps {
			if err := prog.do(st.name, st.ctr, st.fn); err != nil {
				return err
			}
		}
		if err := d.postStart(ctx, prog, hooks, sw.NewID, sw.Name); err != nil {
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
		if sw.OldID == "" {
			continue
		}
		if sw.StartFirst {
			if err := prog.do("stop", sw.Name, func() error {
				d.leaveNetworks(ctx, olds[i])
				return d.stop(ctx, sw.OldID, sw.Name)
			}); err != nil {
				return err
			}
		}
		if err := prog.do("remove", cmp.Or(sw.Backup, sw.Name), func() error { return d.removeContainer(ctx, sw.OldID) }); err != nil {
			return err
		}
		if sw.StartFirst {
			if err := prog.do("rename", sw.Name, func() error { return d.rename(ctx, sw.NewID, sw.Tmp, sw.Name) }); err != nil {
				return err
			}
		}
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

// imageLabels is an image's config labels, empty when it has none.
func imageLabels(img client.ImageInspectResult) map[string]string {
	if img.Config == nil || img.Config.Labels == nil {
		return map[string]string{}
	}
	return img.Config.Labels
}

// rollBackVerified undoes jn and health-checks the previous containers that run again.
func (d *Deployer) rollBackVerified(ctx context.Context, jn *state.Journal, g health.Policy) error {
	// A deploy cancelled by shutdown must still put the old containers back.
	ctx = context.WithoutCancel(ctx)
	if err := jn.Write("rollback"); err != nil {
		return err
	}
	if err := d.rollBack(ctx, jn); err != nil {
		return err
	}
	for _, sw := range jn.Swaps {
		if sw.OldID == "" || !sw.OldRunning {
			continue
		}
		if err := health.Wait(ctx, d.eng, sw.OldID, sw.Name, g, false); err != nil {
			return fmt.Errorf("previous container: %w", err)
		}
	}
	return nil
}

// leaveNetworks takes a container off its networks before it is stopped, so the engine's DNS
// stops naming it and clients reach only its replacement; failures only cost that grace.
func (d *Deployer) leaveNetworks(ctx context.Context, c container.Summary) {
	if c.NetworkSettings == nil {
		return
	}
	for _, nw := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
		if _, err := d.eng.NetworkDisconnect(ctx, nw, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
			d.log.Warn("take old container off its network before stopping it", "container", canonicalName(c), "network", nw, "err", err)
		}
	}
}

func (d *Deployer) stop(ctx context.Context, id, name string) error {
	if _, err := d.eng.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (d *Deployer) start(ctx context.Context, id, name string) error {
	if _, err := d.eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (d *Deployer) rename(ctx context.Context, id, from, to string) error {
	if _, err := d.eng.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: to}); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}

// create makes the container and attaches its secondary networks; on failure nothing is left.
func (d *Deployer) create(ctx context.Context, name string, spec compose.CreateSpec) (string, error) {
	res, err := d.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: spec.Config, HostConfig: spec.Host, NetworkingConfig: spec.Network,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	for _, nw := range slices.Sorted(maps.Keys(spec.Secondary)) {
		if _, err := d.eng.NetworkConnect(ctx, nw, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: spec.Secondary[nw]}); err != nil {
			d.discard(ctx, res.ID)
			return "", fmt.Errorf("connect %s to network %s: %w", name, nw, err)
		}
	}
	return res.ID, nil
}

// discard removes a container berth created and could not use; cleanup must not hide the
// original error, so its own failure is only logged.
func (d *Deployer) discard(ctx context.Context, id string) {
	if _, err := d.eng.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		d.log.Warn("remove unused container", "id", id, "err", err)
	}
}

// serviceContainers lists the service's containers the way compose finds them, by label,
// ordered by replica number.
func (d *Deployer) serviceContainers(ctx context.Context, project, service string) ([]container.Summary, error) {
	f := client.Filters{}.Add("label", compose.LabelProject+"="+project, compose.LabelService+"="+service, compose.LabelOneoff+"=False")
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, unavailable("list containers of "+service, err)
	}
	out := res.Items
	slices.SortFunc(out, func(a, b container.Summary) int {
		na, _ := strconv.Atoi(a.Labels[compose.LabelNumber])
		nb, _ := strconv.Atoi(b.Labels[compose.LabelNumber])
		return cmp.Compare(na, nb)
	})
	return out, nil
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

// ensureNetworks creates the project networks the service needs and that do not exist yet,
// labelled as compose labels them, so that a later `docker compose up` adopts them.
func (d *Deployer) ensureNetworks(ctx context.Context, p *types.Project, s types.ServiceConfig, version string) error {
	d.resources.Lock() // two services deployed at once must not both create the network
	defer d.resources.Unlock()
	for key := range s.Networks {
		n, ok := p.Networks[key]
		if !ok {
			return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, key)
		}
		res, err := d.eng.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", n.Name)})
		if err != nil {
			return unavailable("list networks", err)
		}
		if slices.ContainsFunc(res.Items, func(x network.Summary) bool { return x.Name == n.Name }) {
			continue
		}
		if bool(n.External) {
			return fault.Errorf(fault.Invalid, "external network %s does not exist; create it first", n.Name)
		}
		hash, err := compose.NetworkHash(n)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		labels[compose.LabelNetwork] = key
		labels[compose.LabelProject] = p.Name
		labels[compose.LabelVersion] = version
		labels[compose.LabelConfigHash] = hash
		if _, err := d.eng.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{
			Driver: n.Driver, Options: n.DriverOpts, Internal: n.Internal, Attachable: n.Attachable, Labels: labels,
		}); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
	}
	return nil
}

// ensureVolumes does for named volumes what ensureNetworks does for networks.
func (d *Deployer) ensureVolumes(ctx context.Context, p *types.Project, s types.ServiceConfig, version string) error {
	d.resources.Lock()
	defer d.resources.Unlock()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		vol, ok := p.Volumes[v.Source]
		if !ok {
			return fault.Errorf(fault.Invalid, "service %s uses volume %s, which the project does not define", s.Name, v.Source)
		}
		if _, err := d.eng.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return unavailable("inspect volume "+vol.Name, err)
		}
		if bool(vol.External) {
			return fault.Errorf(fault.Invalid, "external volume %s does not exist; create it first", vol.Name)
		}
		hash, err := compose.VolumeHash(vol)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, val := range vol.Labels {
			labels[k] = val
		}
		labels[compose.LabelVolume] = v.Source
		labels[compose.LabelProject] = p.Name
		labels[compose.LabelVersion] = version
		labels[compose.LabelConfigHash] = hash
		if _, err := d.eng.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol.Name, Driver: vol.Driver, DriverOpts: vol.DriverOpts, Labels: labels}); err != nil {
			return fmt.Errorf("create volume %s: %w", vol.Name, err)
		}
	}
	return nil
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: what + ": " + err.Error(), Err: err}
}
