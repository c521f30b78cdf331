package state

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"syscall"
)

// DefaultHistoryLimit is how many entries a History keeps when told 0.
const DefaultHistoryLimit = 1000

// History keeps the newest entries (deploy records) of type T, in memory and, when its Dir
// is persistent, in a JSON-lines file there that survives restarts. Each entry is one appended,
// synced line, so a crash loses at most the line being written, which a reader then skips; the
// file is rewritten (temporary file, sync, rename) when it holds twice the limit.
//
// Several processes may share the file (`berth deploy` beside a running `berth serve`): every
// write and rewrite holds an exclusive lock on a file beside it, and a process that finds the
// file changed since it last looked reads it again before writing or answering, so no process
// rewrites away another's lines and each shows the others' entries.
type History[T any] struct {
	mu      sync.Mutex
	path    string // "" keeps the history in memory only
	lock    string // the lock file's path
	limit   int
	entries []T // oldest first, at most limit
	lines   int // lines in the file, to know when to compact
	seen    os.FileInfo
	torn    bool // the file does not end on a newline: a writer crashed mid-line
}

// OpenHistory loads the history kept in d (its folder created if missing); a Dir that is not
// persistent keeps it in memory. A limit <= 0 means DefaultHistoryLimit.
func OpenHistory[T any](d Dir, limit int) (*History[T], error) {
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	h := &History[T]{limit: limit}
	if !d.Persistent() {
		return h, nil
	}
	if err := os.MkdirAll(d.root, 0o700); err != nil {
		return nil, fmt.Errorf("STATE_DIR: %w", err)
	}
	h.path, h.lock = d.historyFile(), d.historyLock()
	err := h.locked(func() error {
		if err := h.load(); err != nil {
			return err
		}
		// Writing the file again also ends it on a newline after a torn last line.
		return h.compact()
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// locked runs fn holding the exclusive lock that every process writing the file takes.
func (h *History[T]) locked(fn func() error) error {
	f, err := os.OpenFile(h.lock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("deploy history lock: %w", err)
	}
	defer f.Close() // closing releases the lock
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("deploy history lock: %w", err)
	}
	return fn()
}

// load reads the file again, when another process changed it since this one last did. The
// caller holds the lock.
func (h *History[T]) load() error {
	fi, err := os.Stat(h.path)
	if err == nil && h.seen != nil && os.SameFile(fi, h.seen) && fi.Size() == h.seen.Size() {
		return nil
	}
	b, err := os.ReadFile(h.path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read deploy history: %w", err)
	}
	h.entries, h.lines, h.torn = nil, 0, len(b) > 0 && b[len(b)-1] != '\n'
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		h.lines++
		var e T
		if json.Unmarshal(sc.Bytes(), &e) != nil {
			continue // a line cut short by a crash
		}
		h.entries = append(h.entries, e)
	}
	h.trim()
	h.seen, _ = os.Stat(h.path)
	return nil
}

// trim keeps the newest limit entries.
func (h *History[T]) trim() {
	if len(h.entries) > h.limit {
		h.entries = slices.Clone(h.entries[len(h.entries)-h.limit:])
	}
}

// Add keeps e. A failure to write is returned, and e is still kept in memory.
func (h *History[T]) Add(e T) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		h.entries = append(h.entries, e)
		h.trim()
		return nil
	}
	return h.locked(func() error {
		err := h.load()
		h.entries = append(h.entries, e)
		h.trim()
		if err != nil {
			return err
		}
		if h.lines+1 > 2*h.limit {
			return h.compact()
		}
		return h.append(e)
	})
}

// append writes e as one synced line at the end of the file. The caller holds the lock.
func (h *History[T]) append(e T) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode deploy record: %w", err)
	}
	f, err := os.OpenFile(h.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	defer f.Close()
	if h.torn { // end the torn line, or it would swallow this one
		line = append([]byte{'\n'}, line...)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.lines, h.torn = h.lines+1, false
	if err := f.Sync(); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.seen, err = f.Stat()
	return err
}

// compact writes the kept entries to a new file and renames it over the old one. The caller
// holds the lock.
func (h *History[T]) compact() error {
	var buf bytes.Buffer
	for _, e := range h.entries {
		line, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("encode deploy record: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	if err := replaceFile(h.path, buf.Bytes()); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.lines, h.torn = len(h.entries), false
	var err error
	h.seen, err = os.Stat(h.path)
	return err
}

// Records returns up to n entries (all when n <= 0), newest first, including those another
// process sharing the file added. When the file cannot be read the entries in memory are returned.
func (h *History[T]) Records(n int) []T {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path != "" {
		_ = h.locked(h.load)
	}
	out := slices.Clone(h.entries)
	slices.Reverse(out)
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	if out == nil {
		out = []T{}
	}
	return out
}
