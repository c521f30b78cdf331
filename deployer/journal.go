package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// journal is the on-disk record of one service deploy in flight: berth writes it, atomically,
// before every engine action, so that after a crash (or a daemon restart) Reconcile can tell
// which containers are whose and finish or undo the deploy. Without a state directory it lives
// in memory only and a crash is repaired by hand.
type journal struct {
	dir  string // "" = not persisted
	path string

	Project string `json:"project"`
	Service string `json:"service"`
	Step    string `json:"step"` // the step about to run
	// Committed is set once the new containers passed the health gate and berth began
	// removing the old ones: from then on a crashed deploy is finished, not undone.
	Committed bool   `json:"committed"`
	Swaps     []swap `json:"swaps"`
}

// swap is one replica's change: the old container (if there was one), the new one and the
// names each carries on the way.
type swap struct {
	Name       string `json:"name"`             // the final container name
	Tmp        string `json:"tmp,omitempty"`    // the new container's name until it takes Name
	Backup     string `json:"backup,omitempty"` // the old container's name once it stepped aside
	OldID      string `json:"old_id,omitempty"` // "" for a new replica
	OldImage   string `json:"old_image,omitempty"`
	OldRunning bool   `json:"old_running,omitempty"` // a one-shot service's exited container is not started again
	NewID      string `json:"new_id,omitempty"`      // "" until the create returned
	StartFirst bool   `json:"start_first,omitempty"`
}

func newJournal(dir, project, service string) *journal {
	j := &journal{dir: dir, Project: project, Service: service}
	if dir != "" {
		j.path = filepath.Join(dir, "journal", safeFileName(project+"__"+service)+".json")
	}
	return j
}

// safeFileName keeps project and service names (already [a-z0-9_.-] in practice) path-safe.
func safeFileName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

// write records step as the next one, durably, before the caller performs it.
func (j *journal) write(step string) error {
	j.Step = step
	if j.path == "" {
		return nil
	}
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(j.path), 0o700); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := replaceFile(j.path, b); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// finish removes the journal: the deploy needs no repair any more.
func (j *journal) finish() error {
	if j.path == "" {
		return nil
	}
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// readJournals loads every unfinished deploy's journal in dir.
func readJournals(dir string) ([]*journal, error) {
	if dir == "" {
		return nil, nil
	}
	paths, err := filepath.Glob(filepath.Join(dir, "journal", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*journal
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("journal %s: %w", p, err)
		}
		j := &journal{dir: dir, path: p}
		if err := json.Unmarshal(b, j); err != nil {
			return nil, fmt.Errorf("journal %s is not valid (remove it after checking the service by hand): %w", p, err)
		}
		out = append(out, j)
	}
	return out, nil
}

// Reconcile repairs every deploy a crash or a daemon restart left unfinished: one whose new
// containers had passed the health gate is finished, any other is undone, so the service runs
// and no temporary container is left. A deploy another berth process is running (it holds the
// service's lock) is left to it. Run it at start, before serving.
func (d *Deployer) Reconcile(ctx context.Context) error {
	js, err := readJournals(d.stateDir)
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

// reconcileService repairs the service's own unfinished deploy, if any, before a new one.
func (d *Deployer) reconcileService(ctx context.Context, project, service string) error {
	j := newJournal(d.stateDir, project, service)
	if j.path == "" {
		return nil
	}
	if _, err := os.Stat(j.path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	js, err := readJournals(d.stateDir)
	if err != nil {
		return err
	}
	for _, x := range js {
		if x.path == j.path {
			return d.repair(ctx, x)
		}
	}
	return nil
}

func (d *Deployer) repair(ctx context.Context, j *journal) error {
	d.log.Warn("repairing a deploy berth did not finish", "project", j.Project, "service", j.Service,
		"step", j.Step, "committed", j.Committed)
	var err error
	if j.Committed {
		err = d.rollForward(ctx, j)
	} else {
		err = d.rollBack(ctx, j)
	}
	if err != nil {
		return err
	}
	return j.finish()
}

// rollBack undoes j: every new container goes, every old one takes its name back and runs.
func (d *Deployer) rollBack(ctx context.Context, j *journal) error {
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
func (d *Deployer) rollForward(ctx context.Context, j *journal) error {
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
func (d *Deployer) removeNew(ctx context.Context, j *journal, sw swap) error {
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
		c.Container.Config.Labels[labelProject] != j.Project || c.Container.Config.Labels[labelService] != j.Service {
		return nil // a name reused by someone else: not ours to remove
	}
	return d.removeContainer(ctx, c.Container.ID)
}

// removeContainer stops and removes id; a container already gone is fine.
func (d *Deployer) removeContainer(ctx context.Context, id string) error {
	_, err := d.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", short(id), err)
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// temporary says whether a container carries one of the names berth gives containers only
// while a deploy runs (tmp or backup), for tests and `berth check`.
func temporary(c container.Summary) bool {
	n := canonicalName(c)
	return strings.HasPrefix(n, backupPrefix) || (len(n) > 13 && n[12] == '_' && isHex(n[:12]))
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// backupPrefix starts the name an old container takes while its replacement is health-gated.
const backupPrefix = "berth-previous_"
