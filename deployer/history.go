package deployer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// HistoryFile is the deploy history's file name in STATE_DIR (the rollout journal uses others).
const HistoryFile = "deploys.jsonl"

// DefaultHistoryLimit is how many Records a History keeps when told 0.
const DefaultHistoryLimit = 1000

// History keeps the newest Records of finished deploys, in memory and, when it has a
// directory, in a JSON-lines file there that survives restarts. Each Record is one appended,
// synced line, so a crash loses at most the line being written, which a reader then skips; the
// file is rewritten (temporary file, sync, rename) when it holds twice the limit.
//
// Several processes may share the file (`berth deploy` beside a running `berth serve`): every
// write and rewrite holds an exclusive lock on a file beside it, and a process that finds the
// file changed since it last looked reads it again before writing or answering, so no process
// rewrites away another's lines and each shows the others' deploys.
type History struct {
	mu      sync.Mutex
	path    string // "" keeps the history in memory only
	limit   int
	records []Record // oldest first, at most limit
	lines   int      // lines in the file, to know when to compact
	seen    os.FileInfo
	torn    bool // the file does not end on a newline: a writer crashed mid-line
}

// OpenHistory loads the history kept in dir (created if missing); dir "" keeps it in memory.
func OpenHistory(dir string, limit int) (*History, error) {
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	h := &History{limit: limit}
	if dir == "" {
		return h, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("STATE_DIR: %w", err)
	}
	h.path = filepath.Join(dir, HistoryFile)
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
func (h *History) locked(fn func() error) error {
	f, err := os.OpenFile(h.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
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
func (h *History) load() error {
	fi, err := os.Stat(h.path)
	if err == nil && h.seen != nil && os.SameFile(fi, h.seen) && fi.Size() == h.seen.Size() {
		return nil
	}
	b, err := os.ReadFile(h.path)
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("read deploy history: %w", err)
	}
	h.records, h.lines, h.torn = nil, 0, len(b) > 0 && b[len(b)-1] != '\n'
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		h.lines++
		var r Record
		if json.Unmarshal(sc.Bytes(), &r) != nil {
			continue // a line cut short by a crash
		}
		h.records = append(h.records, r)
	}
	h.trim()
	h.seen, _ = os.Stat(h.path)
	return nil
}

// trim keeps the newest limit records.
func (h *History) trim() {
	if len(h.records) > h.limit {
		h.records = slices.Clone(h.records[len(h.records)-h.limit:])
	}
}

// Add keeps r. A failure to write is returned, and r is still kept in memory.
func (h *History) Add(r Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path == "" {
		h.records = append(h.records, r)
		h.trim()
		return nil
	}
	return h.locked(func() error {
		err := h.load()
		h.records = append(h.records, r)
		h.trim()
		if err != nil {
			return err
		}
		if h.lines+1 > 2*h.limit {
			return h.compact()
		}
		line, err := json.Marshal(r)
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
	})
}

// compact writes the kept records to a new file and renames it over the old one. The caller
// holds the lock.
func (h *History) compact() error {
	var buf bytes.Buffer
	for _, r := range h.records {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode deploy record: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	if err := replaceFile(h.path, buf.Bytes()); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.lines, h.torn = len(h.records), false
	var err error
	h.seen, err = os.Stat(h.path)
	return err
}

// Records returns up to n records (all when n <= 0), newest first, including those another
// process sharing the file added. When the file cannot be read the records in memory are returned.
func (h *History) Records(n int) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.path != "" {
		_ = h.locked(h.load)
	}
	out := slices.Clone(h.records)
	slices.Reverse(out)
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	if out == nil {
		out = []Record{}
	}
	return out
}
