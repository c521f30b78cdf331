package filestamp

import (
	"os"
	"path/filepath"
	"testing"
)

// Every way a file can change is seen by the next Changed, including a rewrite with the same
// size in the same timestamp tick (racy: compared by content).
func TestChanged(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, path string)
		want   bool
	}{
		{"untouched", func(*testing.T, string) {}, false},
		{"rewritten, same size", func(t *testing.T, p string) { write(t, p, "image: acme/web:2\n") }, true},
		{"grown", func(t *testing.T, p string) { write(t, p, "image: acme/web:10\n") }, true},
		{"removed", func(t *testing.T, p string) { must(t, os.Remove(p)) }, true},
		{"replaced by rename", func(t *testing.T, p string) {
			write(t, p+".new", "image: acme/web:1\n")
			must(t, os.Rename(p+".new", p))
		}, true},
		{"missing one created", func(t *testing.T, p string) { write(t, filepath.Join(filepath.Dir(p), ".env"), "X=1\n") }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "compose.yaml")
			write(t, p, "image: acme/web:1\n")
			s := Take([]string{p, filepath.Join(dir, ".env"), p})
			if len(s.Paths()) != 2 {
				t.Fatalf("paths %v, want each once", s.Paths())
			}
			if s.Changed() {
				t.Fatal("changed before any change")
			}
			tc.change(t, p)
			if got := s.Changed(); got != tc.want {
				t.Errorf("Changed() = %v, want %v", got, tc.want)
			}
		})
	}
}

// A file changed just before its stamp is compared by content until it settles.
func TestRacyUntilSettled(t *testing.T) {
	p := filepath.Join(t.TempDir(), "compose.yaml")
	write(t, p, "x")
	s := Take([]string{p})
	if !s.Racy() {
		t.Fatal("a file written now is not racy")
	}
	if _, ok := s.Settled(); ok {
		t.Error("settled within the racy window")
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	must(t, os.WriteFile(p, []byte(s), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
