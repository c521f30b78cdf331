package deployer

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/watch"
)

// newPolicyWatcher is a watcher over STATE_DIR dir on a controlled clock whose deploys are
// only noted (the engine test proves they go through the queue): for the decisions alone.
func newPolicyWatcher(t *testing.T, dir string, clock *time.Time, deployed *[]string) *Watcher {
	t.Helper()
	d := New(context.Background(), nil, Options{StateDir: dir})
	w, err := d.NewWatcher(WatchOptions{Now: func() time.Time { return *clock }})
	if err != nil {
		t.Fatal(err)
	}
	w.deploy = func(_ watchTarget, digest string) { *deployed = append(*deployed, digest) }
	return w
}

// TestWatchMinAgeSurvivesRestart: with berth.min-age=72h a new digest waits until it has been
// seen unchanged for 72h, counted from its first sighting even across a restart of berth (a
// new Deployer on the same STATE_DIR); a digest that changes meanwhile starts the count again.
func TestWatchMinAgeSurvivesRestart(t *testing.T) {
	dir, start := t.TempDir(), time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	clock := start
	var deployed []string
	target := watchTarget{key: "shop/db", project: "shop", service: "db", policy: watch.Policy{Mode: watch.ModeDeploy, Interval: time.Hour, MinAge: 72 * time.Hour}}
	check := func(w *Watcher, available string) WatchStatus {
		var st WatchStatus
		w.act(context.Background(), target, "sha256:old", available, clock, &st)
		return st
	}
	w := newPolicyWatcher(t, dir, &clock, &deployed)
	if st := check(w, "sha256:new"); st.Waiting != watch.WaitMinAge || !st.Until.Equal(start.Add(72*time.Hour)) {
		t.Fatalf("status %+v, want waiting for min-age until %s", st, start.Add(72*time.Hour))
	}
	clock = start.Add(71 * time.Hour)
	w = newPolicyWatcher(t, dir, &clock, &deployed) // a restart
	if st := check(w, "sha256:new"); st.Waiting != watch.WaitMinAge || !st.Until.Equal(start.Add(72*time.Hour)) || len(deployed) != 0 {
		t.Fatalf("after a restart: status %+v, deploys %v; want still waiting until %s", st, deployed, start.Add(72*time.Hour))
	}
	clock = start.Add(72 * time.Hour)
	if st := check(w, "sha256:new"); st.Waiting != "" || len(deployed) != 1 || deployed[0] != "sha256:new" {
		t.Fatalf("at 72h: status %+v, deploys %v; want sha256:new deployed", st, deployed)
	}
	// The tag moves again: the newer digest waits its own 72h.
	if st := check(w, "sha256:newer"); st.Waiting != watch.WaitMinAge || !st.Until.Equal(clock.Add(72*time.Hour)) || len(deployed) != 1 {
		t.Fatalf("a newer digest: status %+v, deploys %v; want waiting 72h from now", st, deployed)
	}
}

// TestWatchApproval: berth.approve=manual holds a new digest until it is approved (by project/
// service or service name); the approval survives a restart; a rejection is recorded and the
// digest is not deployed; a later digest waits for its own approval.
func TestWatchApproval(t *testing.T) {
	dir, clock := t.TempDir(), time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	var deployed []string
	target := watchTarget{key: "shop/web", project: "shop", service: "web", policy: watch.Policy{Mode: watch.ModeDeploy, Interval: time.Hour, Manual: true}}
	check := func(w *Watcher, available string) WatchStatus {
		var st WatchStatus
		w.act(context.Background(), target, "sha256:old", available, clock, &st)
		return st
	}
	w := newPolicyWatcher(t, dir, &clock, &deployed)
	w.targets[target.key] = target
	if _, err := w.Decide("web", true); err == nil {
		t.Fatal("approved an update no check has seen")
	}
	if st := check(w, "sha256:new"); st.Waiting != watch.WaitApproval || len(deployed) != 0 {
		t.Fatalf("status %+v, deploys %v; want held for approval", st, deployed)
	}
	if digest, err := w.Decide("web", true); err != nil || digest != "sha256:new" {
		t.Fatalf("approve = %q, %v", digest, err)
	}
	w = newPolicyWatcher(t, dir, &clock, &deployed) // a restart keeps the approval
	if st := check(w, "sha256:new"); st.Waiting != "" || len(deployed) != 1 {
		t.Fatalf("after approval: status %+v, deploys %v; want deployed", st, deployed)
	}
	var recs []Record
	w.d.onRecord = func(r Record) { recs = append(recs, r) }
	if st := check(w, "sha256:newer"); st.Waiting != watch.WaitApproval {
		t.Fatalf("a newer digest: status %+v, want held for its own approval", st)
	}
	if len(recs) != 1 || recs[0].Outcome != OutcomeHeld || recs[0].Digest != "sha256:newer" {
		t.Fatalf("records %+v, want sha256:newer held", recs)
	}
	if check(w, "sha256:newest"); len(recs) != 3 || recs[1].Outcome != OutcomeExpired || recs[1].Digest != "sha256:newer" {
		t.Fatalf("records %+v, want sha256:newer expired when the tag moved on, then sha256:newest held", recs)
	}
	recs = nil
	w.targets[target.key] = target
	if _, err := w.Decide("shop/web", false); err != nil {
		t.Fatal(err)
	}
	if st := check(w, "sha256:newest"); st.Waiting != "rejected" || len(deployed) != 1 {
		t.Fatalf("after rejection: status %+v, deploys %v", st, deployed)
	}
	if len(recs) != 1 || recs[0].Outcome != OutcomeDeclined || recs[0].Digest != "sha256:newest" || recs[0].Source != "watch" {
		t.Fatalf("records %+v, want one declined record of sha256:newest", recs)
	}
}

// TestWatchNotifyOnly: berth.watch=notify records a new digest as available once, and never deploys it.
func TestWatchNotifyOnly(t *testing.T) {
	clock := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	var deployed []string
	w := newPolicyWatcher(t, t.TempDir(), &clock, &deployed)
	var recs []Record
	w.d.onRecord = func(r Record) { recs = append(recs, r) }
	target := watchTarget{key: "shop/db", project: "shop", service: "db", policy: watch.Policy{Mode: watch.ModeNotify, Interval: time.Hour}}
	for range 3 {
		var st WatchStatus
		w.act(context.Background(), target, "sha256:old", "sha256:new", clock, &st)
	}
	if len(deployed) != 0 || len(recs) != 1 || recs[0].Outcome != OutcomeAvailable || recs[0].Digest != "sha256:new" {
		t.Fatalf("deploys %v, records %+v; want one available record and no deploy", deployed, recs)
	}
}

// TestWebhookHold: a webhook push waits for the window only when the service says so
// (berth.window.webhook=true), by its own window or WATCH_WINDOW's.
func TestWebhookHold(t *testing.T) {
	monday := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC)
	night, _ := watch.ParseWindow("* 02:00-04:00")
	opens := time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)
	cases := []struct {
		name     string
		labels   map[string]string
		defaults watch.Defaults
		at       time.Time
		until    time.Time // zero: no hold
		err      bool
	}{
		{name: "no label", labels: map[string]string{watch.LabelWindow: "* 02:00-04:00"}, at: monday},
		{name: "own window", labels: map[string]string{watch.LabelWindow: "* 02:00-04:00", watch.LabelWindowWebhook: "true"}, at: monday, until: opens},
		{name: "inside", labels: map[string]string{watch.LabelWindow: "* 02:00-04:00", watch.LabelWindowWebhook: "true"}, at: opens},
		{name: "global window", labels: map[string]string{watch.LabelWindowWebhook: "true"}, defaults: watch.Defaults{Window: night}, at: monday, until: opens},
		{name: "no window at all", labels: map[string]string{watch.LabelWindowWebhook: "true"}, at: monday},
		{name: "bad window", labels: map[string]string{watch.LabelWindow: "soon", watch.LabelWindowWebhook: "true"}, at: monday, err: true},
		{name: "bad webhook label", labels: map[string]string{watch.LabelWindowWebhook: "yes"}, at: monday, err: true},
	}
	for _, tc := range cases {
		until, hold, err := webhookHold(tc.labels, tc.defaults, tc.at)
		if (err != nil) != tc.err {
			t.Errorf("%s: error %v, want one: %v", tc.name, err, tc.err)
		}
		if hold != !tc.until.IsZero() || !until.Equal(tc.until) {
			t.Errorf("%s: hold %v until %s, want until %s", tc.name, hold, until, tc.until)
		}
	}
}

// TestWatchRetry: a digest whose deploy ended without the service running it is queued again
// at the next check (a failed pull, a gate's veto), unless the service rolled back from it
// since it was queued: that one waits for the tag to move on.
func TestWatchRetry(t *testing.T) {
	clock := time.Date(2000, 3, 2, 12, 0, 0, 0, time.UTC) // before markFailed's real clock
	var deployed []string
	w := newPolicyWatcher(t, t.TempDir(), &clock, &deployed)
	target := watchTarget{key: "shop/web", project: "shop", service: "web", policy: watch.Policy{Mode: watch.ModeDeploy, Interval: time.Minute}}
	check := func(available string) {
		var st WatchStatus
		w.act(context.Background(), target, "sha256:old", available, clock, &st)
	}
	check("sha256:new")
	check("sha256:new") // the first deploy ended (here: never ran) and nothing rolled back
	if len(deployed) != 2 {
		t.Fatalf("deploys %v, want the digest queued again", deployed)
	}
	w.d.markFailed(w.d.log, target.key, "sha256:image-of-new", nil)
	clock = clock.Add(time.Minute)
	check("sha256:new")
	check("sha256:newer")
	if want := []string{"sha256:new", "sha256:new", "sha256:newer"}; !slices.Equal(deployed, want) {
		t.Fatalf("deploys %v, want %v: a rolled-back digest is not queued again, the next one is", deployed, want)
	}
}
