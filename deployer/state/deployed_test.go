package state

import (
	"testing"
	"time"
)

// TestDeployedPushesSurviveRestart: what a service last deployed is read back by the next berth.
func TestDeployedPushesSurviveRestart(t *testing.T) {
	d := New(t.TempDir())
	p, err := d.DeployedPushes()
	if err != nil {
		t.Fatal(err)
	}
	want := DeployedPush{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:ab", PushedAt: time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)}
	if err := p.Set("shop/web", want); err != nil {
		t.Fatal(err)
	}
	again, err := d.DeployedPushes()
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := again.Get("shop/web"); !ok || got != want {
		t.Errorf("after reopening: %+v %v, want %+v", got, ok, want)
	}
	if _, ok := again.Get("shop/db"); ok {
		t.Error("a service never deployed has a deployed push")
	}
}
