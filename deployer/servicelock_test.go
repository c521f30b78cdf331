package deployer

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/state"
)

// TestServiceLockBetweenProcesses: while another berth process sharing STATE_DIR (here a
// second Deployer, with its own open lock file) deploys a service, a Reconcile at start leaves
// that deploy's journal alone, and a new deploy of the service waits; once the other process is
// done, the journal is repaired and the deploy runs.
func TestServiceLockBetweenProcesses(t *testing.T) {
	p := newRolloutProject(t, "", "")
	dir := t.TempDir()
	other, _ := p.deployer(Options{StateDir: dir})
	unlock, ok, err := other.lockService(context.Background(), p.name, "web", false)
	if err != nil || !ok {
		t.Fatalf("the other process's lock: ok %v, err %v", ok, err)
	}
	// Its deploy is in flight: a journal with nothing to undo yet.
	live := state.New(dir).NewJournal(p.name, "web")
	if err := live.Write("pull"); err != nil {
		t.Fatal(err)
	}

	var logs deployertest.Log
	d, records := p.deployer(Options{StateDir: dir, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err := d.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if j, err := state.New(dir).Pending(p.name, "web"); j == nil {
		t.Fatalf("Reconcile repaired another process's live deploy: %v", err)
	}
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2")
	if _, err := d.Deploy(context.Background(), Request{Source: "test", Repository: "acme/web", Tag: p.tag}); err != nil {
		t.Fatal(err)
	}
	deployertest.Eventually(t, "the deploy to wait for the other process", time.Minute, func() bool {
		return strings.Contains(logs.String(), "waiting for another berth process")
	})
	if n := len(records()); n != 0 {
		t.Fatalf("%d deploys finished while the other process held the service", n)
	}

	unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if recs := records(); len(recs) != 1 || recs[0].Outcome != OutcomeDeployed || p.body() != "version 2" {
		t.Fatalf("after the other process: %v, web answers %q; want deployed, version 2", outcomes(recs), p.body())
	}
	if j, err := state.New(dir).Pending(p.name, "web"); j != nil || err != nil {
		t.Errorf("the journal the other process left is still there: %+v, %v", j, err)
	}
	if left, err := state.New(dir).Journals(); len(left) != 0 || err != nil {
		t.Errorf("journals left: %+v, %v", left, err)
	}
}
