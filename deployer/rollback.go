package deployer

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/state"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// Reconcile repairs every deploy a crash or a daemon restart left unfinished: one whose new
// containers had passed the health gate is finished, any other is undone, so the service runs
// and no temporary container is left. The journals in STATE_DIR say what to do; what no journal
// describes, RepairLeftovers finds on the engine. A deploy another berth process is running (it holds the
// service's lock) is left to it. Run it at start, before serving.
func (d *Deployer) Reconcile(ctx context.Context) error {
	js, err := d.state.Journals()
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range js {
		unlock, ok, err := d.lockService(ctx, j.Project, j.Service, false)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !ok {
			d.log.Info("another berth process is deploying the service; its journal is left to it", "project", j.Project, "service", j.Service)
			continue
		}
		if err := d.repair(ctx, j); err != nil {
			errs = append(errs, fmt.Errorf("repair deploy of %s/%s: %w", j.Project, j.Service, err))
		}
		unlock()
	}
	return errors.Join(errs...)
}

// reconcileService repairs the service's own unfinished deploy, if any, before a new one; the
// caller holds the service's lock. fromEngine also looks for leftovers no journal names (a
// dependent's recreate does not: the service's own deploy may be running beside it).
func (d *Deployer) reconcileService(ctx context.Context, project, service string, fromEngine bool) error {
	j, err := d.state.Pending(project, service)
	if err != nil {
		return err
	}
	if j != nil {
		return d.repair(ctx, j)
	}
	if !fromEngine {
		return nil
	}
	return d.repairFromEngine(ctx, project, service, true)
}

func (d *Deployer) repair(ctx context.Context, j *state.Journal) error {
	d.log.Warn("repairing a deploy berth did not finish", "project", j.Project, "service", j.Service,
		"step", j.Step, "committed", j.Committed)
	var err error
	if j.Committed {
		err = d.rollForward(ctx, j)
	} else if err = d.rollBack(ctx, j); err == nil {
		d.restoreReference(ctx, d.newProgress(d.log.With("project", j.Project, "service", j.Service)), j.Image, j.ImageID, previousImages(j), nil)
	}
	if err != nil {
		return err
	}
	d.waitRepaired(ctx, j)
	return j.Finish()
}

// waitRepaired waits, as a deploy would, for the containers a repair left running to settle
// (their service's health labels, else the configured wait), so that berth serves, or a deploy
// goes on, only once the service runs again. One that does not settle is logged: the repair
// itself is done and doing it again would change nothing.
func (d *Deployer) waitRepaired(ctx context.Context, j *state.Journal) {
	for _, sw := range j.Swaps {
		if !j.Committed && (sw.OldID == "" || !sw.OldRunning) {
			continue
		}
		res, err := d.eng.ContainerInspect(ctx, sw.Name, client.ContainerInspectOptions{})
		if err != nil || res.Container.Config == nil {
			d.log.Warn("repaired container not found", "container", sw.Name, "err", err)
			continue
		}
		p, err := health.For(health.Policy{Timeout: d.healthTimeout, Settle: d.healthSettle}, sw.Name, res.Container.Config.Labels)
		if err == nil {
			oneShot := sw.OldID != "" && !sw.OldRunning
			err = health.Wait(ctx, d.eng, res.Container.ID, sw.Name, p, oneShot)
		}
		if err != nil {
			d.log.Warn("repaired container is not healthy", "container", sw.Name, "err", err)
		}
	}
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

// rollBack undoes j: every new container goes, every old one takes its name back and runs.
func (d *Deployer) rollBack(ctx context.Context, j *state.Journal) error {
	for i := len(j.Swaps) - 1; i >= 0; i-- {
		sw := j.Swaps[i]
		if err := d.removeNew(ctx, j, sw); err != nil {
			return err
		}
		if sw.OldID == "" {
			continue
		}
		old, err := d.eng.ContainerInspect(ctx, sw.OldID, client.ContainerInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return fault.Errorf(fault.Conflict, "the previous container of %s (%s) is gone; nothing to roll back to", sw.Name, short(sw.OldID))
		}
		if err != nil {
			return unavailable("inspect "+sw.Name, err)
		}
		if strings.TrimPrefix(old.Container.Name, "/") != sw.Name {
			if _, err := d.eng.ContainerRename(ctx, sw.OldID, client.ContainerRenameOptions{NewName: sw.Name}); err != nil {
				return fmt.Errorf("rename %s back to %s: %w", short(sw.OldID), sw.Name, err)
			}
		}
		if sw.OldRunning && (old.Container.State == nil || !old.Container.State.Running) {
			if _, err := d.eng.ContainerStart(ctx, sw.OldID, client.ContainerStartOptions{}); err != nil {
				return fmt.Errorf("start %s again: %w", sw.Name, err)
			}
		}
	}
	return nil
}

// rollForward finishes j: every old container goes, every new one takes its name and runs.
func (d *Deployer) rollForward(ctx context.Context, j *state.Journal) error {
	for _, sw := range j.Swaps {
		if sw.OldID != "" {
			if err := d.removeContainer(ctx, sw.OldID); err != nil {
				return err
			}
		}
		id := sw.NewID
		if id == "" {
			// Committed implies every create returned; without its id, look it up by name.
			id = sw.Tmp
		}
		c, err := d.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil {
			return unavailable("inspect new container of "+sw.Name, err)
		}
		if strings.TrimPrefix(c.Container.Name, "/") != sw.Name {
			if _, err := d.eng.ContainerRename(ctx, c.Container.ID, client.ContainerRenameOptions{NewName: sw.Name}); err != nil {
				return fmt.Errorf("rename %s to %s: %w", short(c.Container.ID), sw.Name, err)
			}
		}
		if c.Container.State == nil || !c.Container.State.Running {
			if _, err := d.eng.ContainerStart(ctx, c.Container.ID, client.ContainerStartOptions{}); err != nil {
				return fmt.Errorf("start %s: %w", sw.Name, err)
			}
		}
	}
	return nil
}

// removeNew removes the container a swap created, found by id or, if the create's answer was
// lost, by its temporary name, after checking it belongs to the service.
func (d *Deployer) removeNew(ctx context.Context, j *state.Journal, sw state.Swap) error {
	ref := sw.NewID
	if ref == "" {
		ref = sw.Tmp
	}
	if ref == "" {
		return nil
	}
	c, err := d.eng.ContainerInspect(ctx, ref, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return unavailable("inspect new container of "+sw.Name, err)
	}
	if c.Container.ID == sw.OldID || c.Container.Config == nil ||
		c.Container.Config.Labels[compose.LabelProject] != j.Project || c.Container.Config.Labels[compose.LabelService] != j.Service {
		return nil // a name reused by someone else: not ours to remove
	}
	return d.removeContainer(ctx, c.Container.ID)
}

// backupPrefix starts the name an old container takes while its replacement is health-gated.
const backupPrefix = "berth-previous_"
