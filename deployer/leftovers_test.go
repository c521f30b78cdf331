package deployer

import (
	"context"
	"testing"

	"github.com/moby/moby/client"
)

// TestLeftoversLookTwice: a new container waiting under `<old id>_<name>` beside its old one is
// what a crash mid-deploy leaves, and also what docker compose's own recreate shows while it
// stops the old container. Left as it is while berth looks twice, berth undoes it (the old
// container runs, the new one is gone); finished by the other tool in between, berth leaves it
// alone (the tool's new container runs under the service's name, untouched).
func TestLeftoversLookTwice(t *testing.T) {
	for _, tc := range []struct {
		name string
		live bool // the test finishes the recreate while berth waits, as compose would
	}{{"a crash's leftovers are undone", false}, {"a recreate in progress is left alone", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newRolloutProject(t, "    stop_grace_period: 1s\n", "")
			ctx := context.Background()
			old := p.web()
			tmp := old.ID[:12] + "_" + p.name + "-web-1"
			created, err := p.eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: tmp, Config: old.Config, HostConfig: old.HostConfig})
			if err != nil {
				t.Fatal(err)
			}
			d, _ := p.deployer(Options{})
			d.lookedOnce = func() {
				if !tc.live {
					return
				}
				// compose's sequence from here: stop and remove the old container, rename, start.
				if _, err := p.eng.ContainerRemove(ctx, old.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
					t.Error(err)
				}
				if _, err := p.eng.ContainerRename(ctx, created.ID, client.ContainerRenameOptions{NewName: p.name + "-web-1"}); err != nil {
					t.Error(err)
				}
				if _, err := p.eng.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
					t.Error(err)
				}
			}
			if err := d.RepairLeftovers(ctx); err != nil {
				t.Fatal(err)
			}
			web := p.web()
			want := old.ID
			if tc.live {
				want = created.ID
			}
			if web.ID != want || web.State == nil || !web.State.Running {
				t.Errorf("%s-web-1 is %.12s (running %v), want %.12s running", p.name, web.ID, web.State != nil && web.State.Running, want)
			}
			if l := p.leftovers(); len(l) > 0 {
				t.Errorf("containers left: %v", l)
			}
		})
	}
}
