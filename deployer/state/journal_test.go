package state

import "testing"

// TestJournalWritesWhatARepairNeeds: a step that changes nothing a repair reads (swaps,
// commit) is not written, so the disk keeps the previous step's name; any change to the swaps
// or the commit is written at once, and a journal written again after Finish is on disk again.
func TestJournalWritesWhatARepairNeeds(t *testing.T) {
	d := New(t.TempDir())
	j := d.NewJournal("shop", "web")
	j.Swaps = []Swap{{Name: "shop-web-1", Tmp: "abc_shop-web-1", OldID: "abc"}}
	onDisk := func() *Journal {
		t.Helper()
		got, err := d.Pending("shop", "web")
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	steps := []struct {
		step     string
		change   func()
		wantStep string
	}{
		{"create", func() {}, "create"},
		{"stop", func() { j.Swaps[0].NewID = "def" }, "stop"},
		{"set-aside", func() {}, "stop"},
		{"rename", func() {}, "stop"},
		{"remove", func() { j.Committed = true }, "remove"},
	}
	for _, s := range steps {
		s.change()
		if err := j.Write(s.step); err != nil {
			t.Fatal(err)
		}
		got := onDisk()
		if got == nil || got.Step != s.wantStep || got.Committed != j.Committed || got.Swaps[0].NewID != j.Swaps[0].NewID {
			t.Fatalf("after Write(%q) the disk holds %+v, want step %q and the swaps and commit in memory %+v", s.step, got, s.wantStep, j)
		}
	}
	if err := j.Finish(); err != nil || onDisk() != nil {
		t.Fatalf("Finish left the journal: %v", err)
	}
	if err := j.Write("remove"); err != nil || onDisk() == nil {
		t.Fatalf("a journal written after Finish is not on disk: %v", err)
	}
}
