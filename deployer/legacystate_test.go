package deployer

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestReconcileRepairsALegacyJournal: a journal the berth before the escaped STATE_DIR names
// left (here with nothing to undo yet) is still repaired at start, and removed.
func TestReconcileRepairsALegacyJournal(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "journal", "shop__web.json")
	if err := os.MkdirAll(filepath.Dir(legacy), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(legacy, []byte(`{"project":"shop","service":"web","step":"pull","committed":false,"swaps":[]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := New(ctx, nil, Options{StateDir: dir})
	if err := d.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(legacy); !os.IsNotExist(err) {
		t.Errorf("the legacy journal is still there after Reconcile: %v", err)
	}
}
