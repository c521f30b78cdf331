package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Journal is the on-disk record of one service deploy in flight: berth writes it, atomically,
// whenever what a repair needs changes (see Write), so that after a crash (or a daemon
// restart) a repair can tell which containers are whose and finish or undo the deploy. Without
// a state directory it lives in memory only and a crash is repaired by hand.
type Journal struct {
	path    string // "" = not persisted
	written []byte // the last content put on disk, Step left out

	Project string `json:"project"`
	Service string `json:"service"`
	Step    string `json:"step"` // the step about to run (on disk: as of the last write, see Write)
	// Committed is set once the new containers passed the health gate and berth began
	// removing the old ones: from then on a crashed deploy is finished, not undone.
	Committed bool   `json:"committed"`
	Swaps     []Swap `json:"swaps"`
	// Image is the reference the service names and ImageID the image this deploy's pull made it
	// name; both are empty when the deploy pulled nothing or other services share the reference.
	// Undoing the deploy points Image back at the previous containers' image (Swap.OldImage), so
	// compose sees nothing to recreate.
	Image   string `json:"image,omitempty"`
	ImageID string `json:"image_id,omitempty"`
}

// Swap is one replica's change: the old container (if there was one), the new one and the
// names each carries on the way.
type Swap struct {
	Name       string `json:"name"`             // the final container name
	Tmp        string `json:"tmp,omitempty"`    // the new container's name until it takes Name
	Backup     string `json:"backup,omitempty"` // the old container's name once it stepped aside
	OldID      string `json:"old_id,omitempty"` // "" for a new replica
	OldImage   string `json:"old_image,omitempty"`
	OldRunning bool   `json:"old_running,omitempty"` // a one-shot service's exited container is not started again
	NewID      string `json:"new_id,omitempty"`      // "" until the create returned
	StartFirst bool   `json:"start_first,omitempty"`
}

// NewJournal starts the journal of a deploy of the project's service; nothing is written
// before its first Write.
func (d Dir) NewJournal(project, service string) *Journal {
	j := &Journal{Project: project, Service: service}
	if d.Persistent() {
		j.path = d.journal(project, service)
	}
	return j
}

// Write records step as the next one, durably, before the caller performs it. A repair needs
// the swaps and the commit, not the step's name (it only logs it): when nothing but the step
// changed since the last write, nothing is written, which keeps the syncs out of stop-first's
// downtime (set-aside, rename and start follow the stop with nothing new to record).
func (j *Journal) Write(step string) error {
	j.Step = step
	if j.path == "" {
		return nil
	}
	bare := *j
	bare.Step = ""
	content, err := json.Marshal(bare)
	if err == nil && j.written != nil && string(content) == string(j.written) {
		return nil
	}
	if err := writeJSON(j.path, j); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.written = content
	return nil
}

// Finish removes the journal: the deploy needs no repair any more.
func (j *Journal) Finish() error {
	if j.path == "" {
		return nil
	}
	j.written = nil
	if err := os.Remove(j.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// Journals loads every unfinished deploy's journal, those an earlier berth left under legacy
// names included (Finish removes each from where it was read).
func (d Dir) Journals() ([]*Journal, error) {
	if !d.Persistent() {
		return nil, nil
	}
	paths, err := filepath.Glob(filepath.Join(d.journalDir(), "*.json"))
	if err != nil {
		return nil, err
	}
	var out []*Journal
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("journal %s: %w", p, err)
		}
		j := &Journal{path: p}
		if err := json.Unmarshal(b, j); err != nil {
			return nil, fmt.Errorf("journal %s is not valid (remove it after checking the service by hand): %w", p, err)
		}
		out = append(out, j)
	}
	return out, nil
}

// Pending returns the unfinished deploy's journal of the project's service, or nil when it has
// none, looking under the legacy name too.
func (d Dir) Pending(project, service string) (*Journal, error) {
	if !d.Persistent() || !exists(d.journal(project, service)) && !exists(d.legacyJournal(project, service)) {
		return nil, nil
	}
	js, err := d.Journals()
	if err != nil {
		return nil, err
	}
	for _, j := range js {
		// A legacy file of this name may be another pair's: its content says whose it is.
		if j.Project == project && j.Service == service {
			return j, nil
		}
	}
	return nil, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
