package state

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// entry stands in for a deploy record: History stores any JSON-encodable type.
type entry struct {
	ID      string `json:"id"`
	Outcome string `json:"outcome,omitempty"`
}

func TestHistoryKeepsNewestAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	h, err := OpenHistory[entry](New(dir), 3)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 8 { // past twice the limit: the file is compacted on the way
		if err := h.Add(entry{ID: fmt.Sprint(i), Outcome: "deployed"}); err != nil {
			t.Fatal(err)
		}
	}
	// A crash in the middle of a write leaves a torn last line.
	f, err := os.OpenFile(New(dir).historyFile(), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"torn","outc`)
	f.Close()
	h, err = OpenHistory[entry](New(dir), 3)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range h.Records(0) {
		ids = append(ids, r.ID)
	}
	if strings.Join(ids, ",") != "7,6,5" {
		t.Errorf("records after reopen = %v, want 7,6,5", ids)
	}
	if err := h.Add(entry{ID: "8"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(New(dir).historyFile())
	if lines := strings.Split(strings.TrimSpace(string(b)), "\n"); len(lines) != 4 || strings.Contains(string(b), "torn") {
		t.Errorf("history file after reopen and add:\n%s", b)
	}
	if got := h.Records(1); len(got) != 1 || got[0].ID != "8" {
		t.Errorf("Records(1) = %+v", got)
	}
}

// Two processes sharing STATE_DIR (a running berth and `berth deploy`) each see the other's
// deploys, and neither's compaction drops the other's lines; a line torn by a crashed writer
// does not swallow the next one.
func TestHistorySharedBetweenProcesses(t *testing.T) {
	dir := t.TempDir()
	serve, err := OpenHistory[entry](New(dir), 4)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := OpenHistory[entry](New(dir), 4) // its own open file and lock, as another process has
	if err != nil {
		t.Fatal(err)
	}
	ids := func(h *History[entry]) string {
		var out []string
		for _, r := range h.Records(0) {
			out = append(out, r.ID)
		}
		return strings.Join(out, ",")
	}
	// Alternating adds pass twice the limit, so both compact along the way.
	for i := range 10 {
		h := serve
		if i%2 == 1 {
			h = cli
		}
		if err := h.Add(entry{ID: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, h := range map[string]*History[entry]{"serve": serve, "cli": cli} {
		if got := ids(h); got != "9,8,7,6" {
			t.Errorf("%s's records = %s, want 9,8,7,6", name, got)
		}
	}
	// Concurrent writers through both lose no line.
	wide, err := OpenHistory[entry](New(t.TempDir()), 1000)
	if err != nil {
		t.Fatal(err)
	}
	other, err := OpenHistory[entry](New(filepath.Dir(wide.path)), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w, h := range []*History[entry]{wide, other} {
		wg.Go(func() {
			for i := range 50 {
				if err := h.Add(entry{ID: fmt.Sprintf("%d-%d", w, i)}); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	if n := len(wide.Records(0)); n != 100 {
		t.Errorf("%d records after 2 × 50 concurrent adds, want 100", n)
	}
	// A writer that crashed mid-line.
	f, err := os.OpenFile(serve.path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"torn","outc`)
	f.Close()
	if err := cli.Add(entry{ID: "after-torn"}); err != nil {
		t.Fatal(err)
	}
	if got := ids(serve); got != "after-torn,9,8,7" {
		t.Errorf("records after a torn line and an add = %s, want after-torn,9,8,7", got)
	}
}
