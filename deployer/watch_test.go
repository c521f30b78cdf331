package deployer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestWatchDeploysNewDigest: a service labelled berth.watch=true is deployed when its tag names
// a new digest in the registry, through the queue and with a webhook deploy's fidelity (compose
// up -d afterwards changes nothing); a crashing new digest is rolled back and not tried again
// at the next checks, and the digest after it is deployed.
func TestWatchDeploysNewDigest(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	reg, tag := deployertest.Registry(), deployertest.UniqueTag("watch")
	push := func(body string, extra ...string) {
		deployertest.PushHTTPImage(t, eng, "acme/web", tag, body, extra...)
	}
	push("version 1")
	name := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, name, fmt.Sprintf("services:\n  web:\n    image: %s/acme/web:%s\n    init: true\n"+
		"    ports: [\"127.0.0.1::80\"]\n    labels: {berth.watch: 'true', berth.watch.interval: 1s}\n", reg, tag))
	p := &rolloutProject{t: t, eng: eng, cli: cli, dir: dir, name: name, tag: tag}
	deployertest.ComposeUp(t, cli, dir)
	d, records := p.deployer(Options{})
	w, err := d.NewWatcher(WatchOptions{Tick: 100 * time.Millisecond, Refresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	key := name + "/web"
	lastOutcome := func() string {
		recs := records()
		if len(recs) == 0 {
			return ""
		}
		return recs[len(recs)-1].Outcome
	}
	checked := func() time.Time { return w.Status()[key].LastCheck }

	deployertest.Eventually(t, "the first check", 20*time.Second, func() bool { return !checked().IsZero() })
	if recs := records(); len(recs) != 0 {
		t.Fatalf("deploys %v before any push", outcomes(recs))
	}
	push("version 2")
	want := deployertest.ManifestDigest(t, reg, "acme/web", tag)
	deployertest.Eventually(t, "the watched deploy", 90*time.Second, func() bool { return lastOutcome() == OutcomeDeployed })
	if r := records()[0]; r.Source != "watch" || r.Digest != want {
		t.Fatalf("record source %q digest %q, want watch and %s", r.Source, r.Digest, want)
	}
	_ = d.Wait(ctx)
	p.upChangesNothing("version 2")

	push("version 3", brokenImage...)
	deployertest.Eventually(t, "the rollback", 90*time.Second, func() bool { return lastOutcome() == OutcomeRolledBack })
	_ = d.Wait(ctx)
	p.requireFailedImageKept(d)
	n, at := len(records()), checked()
	for i := range 3 { // three more checks of the same digest deploy nothing
		deployertest.Eventually(t, fmt.Sprintf("check %d after the rollback", i+1), 20*time.Second, func() bool { return checked().After(at) })
		at = checked()
	}
	if recs := records(); len(recs) != n || d.QueueDepth() != 0 {
		t.Fatalf("the rolled-back digest was tried again: outcomes %v", outcomes(recs))
	}
	if st := w.Status()[key]; st.Available == st.Running || st.Result != "ok" {
		t.Errorf("status %+v, want the new digest available and not running", st)
	}

	push("version 4")
	deployertest.Eventually(t, "the next digest's deploy", 90*time.Second, func() bool { return lastOutcome() == OutcomeDeployed && len(records()) > n })
	_ = d.Wait(ctx)
	p.upChangesNothing("version 4")
}
