package state

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// AcceptedPush is a push berth answered 202 to, for one service: the promise it made to the
// sender. Push holds the request as the deployer knows it, opaque here.
type AcceptedPush struct {
	ID       string          `json:"id"`      // the deploy (ticket) id
	Service  string          `json:"service"` // project/service
	PushedAt time.Time       `json:"pushed_at,omitzero"`
	Push     json.RawMessage `json:"push,omitempty"`
}

// acceptedLine is one line of accepted.jsonl: the pushes of one accepted request, or the end
// of one service's deploy (Done).
type acceptedLine struct {
	Accepted []AcceptedPush `json:"accepted,omitempty"`
	Done     *doneMark      `json:"done,omitempty"`
}

type doneMark struct {
	ID      string `json:"id"`
	Service string `json:"service"`
}

// compactAfter is how many lines accepted.jsonl may hold beyond the pending pushes before it
// is rewritten with only those.
const compactAfter = 1000

// Accepted is the log of accepted pushes: Add appends, and fsyncs, one line per accepted
// request before berth answers 202; Done marks a service's deploy ended. After a crash,
// Pending says what is still owed. Without STATE_DIR it keeps the same account in memory.
type Accepted struct {
	syncMu  sync.Mutex // held while fsyncing or compacting; taken before mu, never inside it
	mu      sync.Mutex
	path    string // "" = memory only
	f       *os.File
	pending map[string]AcceptedPush // per service, the newest push not yet deployed
	lines   int                     // lines in the file
	written int64                   // lines appended since open; synced: how many of them are on disk
	synced  int64
}

// Accepted opens the accepted-push log (accepted.jsonl), reading what an earlier berth left.
func (d Dir) Accepted() (*Accepted, error) {
	a := &Accepted{pending: map[string]AcceptedPush{}}
	if !d.Persistent() {
		return a, nil
	}
	a.path = d.acceptedFile()
	if err := a.load(); err != nil {
		return nil, fmt.Errorf("accepted pushes %s: %w", a.path, err)
	}
	if err := a.compact(); err != nil {
		return nil, fmt.Errorf("accepted pushes %s: %w", a.path, err)
	}
	return a, nil
}

// load replays the log into pending; a torn last line (a crash mid-append) is ignored.
func (a *Accepted) load() error {
	f, err := os.Open(a.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l acceptedLine
		if json.Unmarshal(sc.Bytes(), &l) != nil {
			continue
		}
		a.apply(l)
	}
	return sc.Err()
}

// apply folds one line into pending, by the deploy queue's own rule: a push replaces the one
// owed to its service unless it was pushed before it; a Done settles only the push it names.
func (a *Accepted) apply(l acceptedLine) {
	for _, p := range l.Accepted {
		if old, ok := a.pending[p.Service]; ok && p.PushedAt.Before(old.PushedAt) {
			continue
		}
		a.pending[p.Service] = p
	}
	if m := l.Done; m != nil && a.pending[m.Service].ID == m.ID {
		delete(a.pending, m.Service)
	}
}

// Add records the pushes of one accepted request, durably when persistent: one appended line,
// fsynced, so that a 202 sent after it survives a crash.
func (a *Accepted) Add(pushes []AcceptedPush) error {
	if len(pushes) == 0 {
		return nil
	}
	return a.write(acceptedLine{Accepted: pushes}, true)
}

// Done records that the service's deploy of push id ended (deployed, failed or refused): it
// is no longer owed. A crash before this line is written makes berth try it again, which
// finds the service up to date.
func (a *Accepted) Done(id, service string) error {
	return a.write(acceptedLine{Done: &doneMark{ID: id, Service: service}}, false)
}

// write appends l; with sync it returns once the line is on disk. Appends happen under mu,
// fsyncs under syncMu, so one fsync covers every line written before it began: 202s that
// arrive together share their fsyncs (group commit).
func (a *Accepted) write(l acceptedLine, sync bool) error {
	seq, compact, err := a.appendLine(l)
	if err != nil || !sync && !compact {
		return err
	}
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	a.mu.Lock()
	if compact {
		defer a.mu.Unlock()
		if err := a.compact(); err != nil {
			return fmt.Errorf("accepted pushes: %w", err)
		}
		a.synced = a.written
		return nil
	}
	f, upTo := a.f, a.written
	a.mu.Unlock()
	if a.synced >= seq || f == nil {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("accepted pushes: %w", err)
	}
	a.synced = upTo
	return nil
}

// appendLine applies l and appends it to the file; seq numbers the line for write's fsync.
func (a *Accepted) appendLine(l acceptedLine) (seq int64, compact bool, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.apply(l)
	if a.path == "" {
		return 0, false, nil
	}
	b, err := json.Marshal(l)
	if err != nil {
		return 0, false, err
	}
	if a.f == nil {
		if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
			return 0, false, fmt.Errorf("accepted pushes: %w", err)
		}
		if a.f, err = os.OpenFile(a.path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600); err != nil {
			return 0, false, fmt.Errorf("accepted pushes: %w", err)
		}
	}
	if _, err := a.f.Write(append(b, '\n')); err != nil {
		return 0, false, fmt.Errorf("accepted pushes: %w", err)
	}
	a.written++
	a.lines++
	return a.written, a.lines > len(a.pending)+compactAfter, nil
}

// Pending lists, per service, the newest accepted push that was neither deployed nor
// superseded, ordered by service.
func (a *Accepted) Pending() []AcceptedPush {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]AcceptedPush, 0, len(a.pending))
	for _, p := range a.pending {
		out = append(out, p)
	}
	slices.SortFunc(out, func(x, y AcceptedPush) int { return strings.Compare(x.Service, y.Service) })
	return out
}

// compact replaces the log with the pending pushes alone (atomically, synced); callers hold
// syncMu and mu, or own a.
func (a *Accepted) compact() error {
	var b []byte
	for _, p := range a.pending {
		line, err := json.Marshal(acceptedLine{Accepted: []AcceptedPush{p}})
		if err != nil {
			return err
		}
		b = append(append(b, line...), '\n')
	}
	if a.f != nil {
		a.f.Close()
		a.f = nil
	}
	if err := os.MkdirAll(filepath.Dir(a.path), 0o700); err != nil {
		return err
	}
	a.lines = len(a.pending)
	return replaceFile(a.path, b)
}

// Close closes the log file.
func (a *Accepted) Close() error {
	a.syncMu.Lock()
	defer a.syncMu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.f == nil {
		return nil
	}
	err := a.f.Close()
	a.f = nil
	return err
}
