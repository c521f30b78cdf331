package deployer

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Crash repair without a journal: berth's own names say what a crash left. An old container
// set aside is `berth-previous_<its id[:12]>_<name>`; a new container waits under
// `<old id[:12]>_<name>` until it takes the name (a new replica is created under its final name
// and leaves no sign). From those and the containers' states, leftoverJournal rebuilds the
// journal a deploy would have written, and repair finishes or undoes it as for a real one:
//
//   - an old container set aside (stop-first, before its removal): undo;
//   - a new container whose old one is gone (start-first, after the removal): finish;
//   - a new one running beside its old one that berth stopped (start-first, the commit): finish;
//   - any other new container beside its old one: undo.
//
// The one moment this reads differently from the journal is a crash while the old container
// of a stop-first deploy was being removed: the journal finishes, this undoes (the previous
// version runs; nothing is lost).

// RepairLeftovers repairs every deploy a crash left unfinished that no journal describes (no
// STATE_DIR, or it was lost), from berth's container names on the engine, in the projects
// berth serves (never another's: several berths may share an engine). Run it at start, after
// Reconcile.
func (d *Deployer) RepairLeftovers(ctx context.Context) error {
	projects, err := d.servedProjects(ctx, d.loads.get, skipUnloadable)
	if err != nil {
		return err
	}
	var errs []error
	for _, sp := range projects {
		errs = append(errs, d.repairFromEngine(ctx, sp.project.Name, "", false))
	}
	return errors.Join(errs...)
}

// repairFromEngine repairs the leftovers of the project's services (or only of service, when
// set). A service another berth process is deploying (it holds the lock in STATE_DIR) is left
// to it; locked says the caller holds the service's lock already.
func (d *Deployer) repairFromEngine(ctx context.Context, project, service string, locked bool) error {
	groups, err := d.containersByService(ctx, project, service)
	if err != nil {
		return err
	}
	var errs []error
	for _, svc := range slices.Sorted(maps.Keys(groups)) {
		if d.self.Project == project && d.self.Service == svc || !hasLeftovers(groups[svc]) {
			continue
		}
		cs, still, err := d.lookAgain(ctx, project, svc, groups[svc])
		if err != nil || !still {
			errs = append(errs, err)
			continue
		}
		j, err := d.leftoverJournal(ctx, project, svc, cs)
		if err != nil || j == nil {
			errs = append(errs, err)
			continue
		}
		if err := d.repairLocked(ctx, j, locked); err != nil {
			errs = append(errs, fmt.Errorf("repair deploy of %s/%s from the engine: %w", project, svc, err))
		}
	}
	return errors.Join(errs...)
}

// repairLocked repairs j, taking the service's lock first unless the caller holds it.
func (d *Deployer) repairLocked(ctx context.Context, j *state.Journal, locked bool) error {
	if !locked {
		unlock, ok, err := d.lockService(ctx, j.Project, j.Service, false)
		if err != nil {
			return err
		}
		if !ok {
			d.log.Info("another berth process is deploying the service; its containers are left to it", "project", j.Project, "service", j.Service)
			return nil
		}
		defer unlock()
	}
	return d.repair(ctx, j)
}

// leftoverJournal rebuilds the journal of the service's unfinished deploy from its containers,
// or returns nil when they show none.
func (d *Deployer) leftoverJournal(ctx context.Context, project, service string, cs []container.Summary) (*state.Journal, error) {
	byName := map[string]container.Summary{}
	for _, c := range cs {
		byName[canonicalName(c)] = c
	}
	swaps := map[string]*state.Swap{}
	swap := func(name string) *state.Swap {
		if swaps[name] == nil {
			swaps[name] = &state.Swap{Name: name}
		}
		return swaps[name]
	}
	for name, c := range byName {
		if hex, final, ok := leftoverName(strings.TrimPrefix(name, backupPrefix)); ok && strings.HasPrefix(name, backupPrefix) && strings.HasPrefix(c.ID, hex) {
			sw := swap(final)
			sw.OldID, sw.Backup = c.ID, name
		}
	}
	for name, c := range byName {
		hex, final, ok := leftoverName(name)
		if !ok {
			continue
		}
		sw := swap(final)
		sw.Tmp, sw.NewID = name, c.ID
		if at, ok := byName[final]; ok && sw.OldID == "" && strings.HasPrefix(at.ID, hex) {
			sw.OldID = at.ID
		}
	}
	if len(swaps) == 0 {
		return nil, nil
	}
	byID := map[string]container.Summary{}
	for _, c := range cs {
		byID[c.ID] = c
	}
	j := &state.Journal{Project: project, Service: service, Step: "crashed (found on the engine)"}
	for _, name := range slices.Sorted(maps.Keys(swaps)) {
		sw := swaps[name]
		if at, ok := byName[name]; ok && sw.NewID == "" && at.ID != sw.OldID {
			sw.NewID, sw.Tmp = at.ID, name // stop-first, after the new container took the name
		}
		// What a journal would have said of the images, so an undo re-tags the reference too.
		sw.OldImage = byID[sw.OldID].ImageID
		if c, ok := byID[sw.NewID]; ok {
			j.Image, j.ImageID = c.Image, c.ImageID
		}
		forward, err := d.settleSwap(ctx, sw)
		if err != nil {
			return nil, err
		}
		j.Committed = j.Committed || forward
		j.Swaps = append(j.Swaps, *sw)
	}
	return j, nil
}

// settleSwap fills in whether sw's old container ran before the deploy, and says whether the
// deploy had committed (the old container is gone, or berth stopped it beside a running new one).
func (d *Deployer) settleSwap(ctx context.Context, sw *state.Swap) (forward bool, err error) {
	if sw.OldID == "" {
		return sw.NewID != "", nil
	}
	old, err := d.eng.ContainerInspect(ctx, sw.OldID, client.ContainerInspectOptions{})
	if err != nil {
		return false, unavailable("inspect "+sw.Name, err)
	}
	oldRunning := old.Container.State != nil && old.Container.State.Running
	sw.OldRunning = oldRunning
	if sw.NewID == "" {
		sw.OldRunning = true
		return false, nil
	}
	nw, err := d.eng.ContainerInspect(ctx, sw.NewID, client.ContainerInspectOptions{})
	if err != nil {
		return false, unavailable("inspect new container of "+sw.Name, err)
	}
	newRunning := nw.Container.State != nil && nw.Container.State.Running
	// Berth stopped the old container during this deploy if it stopped after the new one was
	// created: it ran before, and a rollback starts it again.
	stoppedByDeploy := !oldRunning && old.Container.State != nil && after(old.Container.State.FinishedAt, nw.Container.Created)
	sw.OldRunning = oldRunning || stoppedByDeploy
	return sw.Backup == "" && stoppedByDeploy && newRunning, nil
}

// after says whether RFC 3339 time a is after b; false when either does not parse.
func after(a, b string) bool {
	ta, errA := time.Parse(time.RFC3339Nano, a)
	tb, errB := time.Parse(time.RFC3339Nano, b)
	return errA == nil && errB == nil && ta.After(tb)
}

// leftoverName splits `<12 hex>_<name>`, the name a new container waits under (and, after
// backupPrefix, an old one set aside), into the hex prefix of the old container's id and name.
func leftoverName(s string) (hex, name string, ok bool) {
	hex, name, found := strings.Cut(s, "_")
	if !found || len(hex) != 12 || name == "" || strings.Trim(hex, "0123456789abcdef") != "" {
		return "", "", false
	}
	return hex, name, true
}

// containersByService lists the project's containers (only service's, when set) by service.
func (d *Deployer) containersByService(ctx context.Context, project, service string) (map[string][]container.Summary, error) {
	f := client.Filters{}.Add("label", compose.LabelProject+"="+project, compose.LabelOneoff+"=False")
	if service != "" {
		f = f.Add("label", compose.LabelService+"="+service)
	}
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, unavailable("list containers of project "+project, err)
	}
	groups := map[string][]container.Summary{}
	for _, c := range res.Items {
		groups[c.Labels[compose.LabelService]] = append(groups[c.Labels[compose.LabelService]], c)
	}
	return groups, nil
}

// hasLeftovers says whether any of cs goes by a name a deploy uses only while it runs.
func hasLeftovers(cs []container.Summary) bool {
	return slices.ContainsFunc(cs, func(c container.Summary) bool {
		_, _, ok := leftoverName(strings.TrimPrefix(canonicalName(c), backupPrefix))
		return ok
	})
}

// lookAgain waits out the longest stop the service's containers may take, then lists them
// again: still says nothing moved in between. docker compose's own recreate goes by the same
// `<old id>_<name>` name while it stops the old container, so a tool recreating the service
// right now leaves the signs a crash leaves; only a crash's stay put. A service that moved is
// left alone (its tool finishes it; if that was a crash after all, the next deploy repairs it).
func (d *Deployer) lookAgain(ctx context.Context, project, service string, cs []container.Summary) (now []container.Summary, still bool, err error) {
	settle := time.Duration(0)
	for _, c := range cs {
		in, err := d.eng.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			return nil, false, unavailable("inspect "+canonicalName(c), err)
		}
		stop := defaultStopTimeout
		if cfg := in.Container.Config; cfg != nil && cfg.StopTimeout != nil {
			stop = time.Duration(*cfg.StopTimeout) * time.Second
		}
		settle = max(settle, stop+leftoverMargin)
	}
	d.log.Info("containers of an unfinished deploy found; checking that no tool is recreating the service now",
		"project", project, "service", service, "wait", settle)
	if d.lookedOnce != nil {
		d.lookedOnce()
	}
	select {
	case <-ctx.Done():
		return nil, false, ctx.Err()
	case <-time.After(settle):
	}
	if now, err = d.serviceContainers(ctx, project, service); err != nil {
		return nil, false, err
	}
	if !slices.Equal(fingerprint(cs), fingerprint(now)) {
		d.log.Warn("another tool (docker compose?) is recreating the service; its containers are left to it",
			"project", project, "service", service)
		return nil, false, nil
	}
	return now, true, nil
}

const (
	defaultStopTimeout = 10 * time.Second // the engine's, for a container that sets none
	leftoverMargin     = 2 * time.Second  // a removal and a rename after the stop
)

// fingerprint is what a recreate in progress changes about cs: which containers, their names
// and states.
func fingerprint(cs []container.Summary) []string {
	out := make([]string, 0, len(cs))
	for _, c := range cs {
		out = append(out, c.ID+" "+canonicalName(c)+" "+string(c.State))
	}
	slices.Sort(out)
	return out
}
