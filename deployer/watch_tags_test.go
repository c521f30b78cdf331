package deployer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestWatchNotifiesNewerTag: a notify-only service with berth.tag-policy=semver running 1.4.2
// is told, once, of the newest newer tag of its shape in the real registry (1.5.0, not
// 2.0.0-rc1, 1.5.0-alpine or latest), sees it in its watch status, and nothing is deployed; a
// newer tag pushed later is told once too. No container runs: the check needs none.
func TestWatchNotifiesNewerTag(t *testing.T) {
	eng := deployertest.Engine(t)
	reg, repo := deployertest.Registry(), "acme/"+deployertest.UniqueTag("semnote")
	deployertest.PushHTTPImage(t, eng, repo, "1.4.2", "semnote")
	tag := func(tags ...string) { // more tags of the same image, without another build
		src, err := name.NewTag(reg + "/" + repo + ":1.4.2")
		if err != nil {
			t.Fatal(err)
		}
		desc, err := remote.Get(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range tags {
			if err := remote.Tag(src.Context().Tag(tg), desc); err != nil {
				t.Fatal(err)
			}
		}
	}
	tag("1.4.3", "1.5.0", "2.0.0-rc1", "1.5.0-alpine", "latest")
	project := strings.ReplaceAll(strings.TrimPrefix(repo, "acme/"), "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  db:\n    image: %s/%s:1.4.2\n"+
		"    labels: {berth.watch: notify, berth.tag-policy: semver, berth.watch.interval: 1s}\n", reg, repo))
	p := &rolloutProject{t: t, eng: eng, dir: dir, name: project}
	d, records := p.deployer(Options{})
	w, err := d.NewWatcher(WatchOptions{Tick: 100 * time.Millisecond, Refresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	w.deploy = func(watchTarget, string) { t.Error("a notify-only service was deployed") }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)
	key := project + "/db"
	told := func(newer string) int {
		n := 0
		for _, r := range records() {
			if r.Outcome != OutcomeAvailable && r.Outcome != OutcomeDeployed {
				t.Errorf("record %s: %s", r.Outcome, r.Error)
			}
			want := fmt.Sprintf("newer tag %s/%s:%s available (running 1.4.2); berth does not edit compose files", reg, repo, newer)
			if r.Error == want {
				n++
			}
		}
		return n
	}
	checksAfter := func(what string, n int) {
		at := w.Status()[key].LastCheck
		for i := range n {
			deployertest.Eventually(t, fmt.Sprintf("%s: check %d", what, i+1), 10*time.Second, func() bool { return w.Status()[key].LastCheck.After(at) })
			at = w.Status()[key].LastCheck
		}
	}
	deployertest.Eventually(t, "the newer tag's record", 10*time.Second, func() bool { return told("1.5.0") > 0 })
	checksAfter("1.5.0 told", 2)
	if st := w.Status()[key]; st.NewerTag != "1.5.0" || st.Result != "ok" || told("1.5.0") != 1 {
		t.Fatalf("status %+v, told %d times; want newer_tag 1.5.0, result ok, told once", st, told("1.5.0"))
	}
	tag("1.6.0")
	deployertest.Eventually(t, "the next newer tag's record", 10*time.Second, func() bool { return told("1.6.0") == 1 })
	if w.Status()[key].NewerTag != "1.6.0" || d.QueueDepth() != 0 {
		t.Fatalf("status %+v, queue %d; want newer_tag 1.6.0 and nothing queued", w.Status()[key], d.QueueDepth())
	}
}
