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
)

// HistoryFile is the deploy history's file name in STATE_DIR (the rollout journal uses others).
const HistoryFile = "deploys.jsonl"

// DefaultHistoryLimit is how many Records a History keeps when told 0.
const DefaultHistoryLimit = 1000

// History keeps the newest Records of finished deploys, in memory and, when it has a
// directory, in a JSON-lines file there that survives restarts. Each Record is one appended,
// synced line, so a crash loses at most the line being written, which Open then skips; the
// file is rewritten (temporary file, sync, rename) when it holds twice the limit.
type History struct {
	mu      sync.Mutex
	path    string // "" keeps the history in memory only
	limit   int
	records []Record // oldest first, at most limit
	lines   int      // lines in the file, to know when to compact
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
	b, err := os.ReadFile(h.path)
	if err != nil && !os.IsNotExist(err) {
		return nil, fmt.Errorf("read deploy history: %w", err)
	}
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
	if len(h.records) > limit {
		h.records = slices.Clone(h.records[len(h.records)-limit:])
	}
	// Writing the file again also ends it on a newline after a torn last line.
	if err := h.compact(); err != nil {
		return nil, err
	}
	return h, nil
}

// Add keeps r. A failure to write is returned, and r is still kept in memory.
func (h *History) Add(r Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r)
	if len(h.records) > h.limit {
		h.records = slices.Clone(h.records[len(h.records)-h.limit:])
	}
	if h.path == "" {
		return nil
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
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.lines++
	return f.Sync()
}

// compact writes the kept records to a new file and renames it over the old one.
func (h *History) compact() error {
	if h.path == "" {
		return nil
	}
	var buf bytes.Buffer
	for _, r := range h.records {
		line, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode deploy record: %w", err)
		}
		buf.Write(append(line, '\n'))
	}
	tmp := h.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		f.Close()
		return fmt.Errorf("deploy history: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("deploy history: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	if err := os.Rename(tmp, h.path); err != nil {
		return fmt.Errorf("deploy history: %w", err)
	}
	h.lines = len(h.records)
	return nil
}

// Records returns up to n records (all when n <= 0), newest first.
func (h *History) Records(n int) []Record {
	h.mu.Lock()
	defer h.mu.Unlock()
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
