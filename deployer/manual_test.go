package deployer

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/fault"
)

// TestRollBackServiceByHand: with no image kept, a roll-back by hand says so and changes
// nothing; after a deploy, the status names the replaced image and RollBackService puts the
// service back on it through the queue, with a record of its own.
func TestRollBackServiceByHand(t *testing.T) {
	p := newRolloutProject(t, "", "")
	ctx := context.Background()
	var mu sync.Mutex
	var events []StepEvent
	d, records := p.deployer(Options{OnStep: func(e StepEvent) { mu.Lock(); events = append(events, e); mu.Unlock() }})
	v1 := p.web().Image
	if _, err := d.RollBackService(ctx, p.name+"/web"); fault.KindOf(err) != fault.NotFound {
		t.Fatalf("roll-back with nothing kept: %v, want not found", err)
	}
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2 of "+p.tag)
	p.deploy(d, Request{})
	v2 := p.web().Image
	checkStepEvents(t, events, records())
	all, err := d.Services(ctx)
	if err != nil || len(all) != 1 || all[0].Previous != v1 || v2 == v1 {
		t.Fatalf("status %+v (%v): want previous image %s, running %s", all, err, v1, v2)
	}
	tk, err := d.RollBackService(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := d.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	recs := records()
	last := recs[len(recs)-1]
	if last.ID != tk.ID || last.Source != "rollback" || last.Outcome != OutcomeDeployed || p.web().Image != v1 {
		t.Fatalf("roll-back record %+v; running %s, want %s", last, p.web().Image, v1)
	}
	if all, _ := d.Services(ctx); len(all) != 1 || all[0].Previous != v2 {
		t.Errorf("after the roll-back the kept image is %v, want %s", all, v2)
	}
}

// checkStepEvents: OnStep saw each recorded step start and end, in the record's order, and
// the pull's progress in between.
func checkStepEvents(t *testing.T, events []StepEvent, recs []Record) {
	t.Helper()
	if len(recs) != 1 {
		t.Fatalf("records %v", outcomes(recs))
	}
	var ended []string
	pulls := 0
	for _, e := range events {
		if e.Deploy != recs[0].ID || e.Service != "web" {
			t.Fatalf("step event %+v names another deploy than %s", e, recs[0].ID)
		}
		switch {
		case e.Pull != nil:
			pulls++
		case e.Done:
			ended = append(ended, e.Step.Name)
		}
	}
	var want []string
	for _, s := range recs[0].Steps {
		want = append(want, s.Name)
	}
	if !slices.Equal(ended, want) || pulls == 0 {
		t.Errorf("steps ended %v, want the record's %v; %d pull progress events, want some", ended, want, pulls)
	}
}
