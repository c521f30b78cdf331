package deployer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// lookupCounter is the real engine, counting the questions a push asks it before its 202: the
// engine cannot say afterwards how often it was asked.
type lookupCounter struct {
	*client.Client
	infos, lists atomic.Int32
}

func (e *lookupCounter) Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error) {
	e.infos.Add(1)
	return e.Client.Info(ctx, o)
}

func (e *lookupCounter) ContainerList(ctx context.Context, o client.ContainerListOptions) (client.ContainerListResult, error) {
	e.lists.Add(1)
	return e.Client.ContainerList(ctx, o)
}

// A burst of pushes asks the engine whether it is a swarm manager once or twice (the first
// push's question, and one shared by those that arrived while it ran), and the pushes after it
// not at all; discovery's container list is shared by the pushes that arrive together.
func TestPushesShareEngineLookups(t *testing.T) {
	eng := deployertest.Engine(t)
	dir := t.TempDir()
	composeYAML := "name: lookups\nservices:\n  web:\n    image: acme/lookups:1\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name     string
		o        Options
		maxLists int32
	}{
		{"configured projects", Options{Projects: []compose.Spec{{Dir: dir}}}, 0},
		{"discovery", Options{Discover: true}, 24}, // fewer than one per two pushes
	} {
		t.Run(tc.name, func(t *testing.T) {
			counted := &lookupCounter{Client: eng}
			tc.o.Owners = []string{"acme"}
			d := New(ctx, counted, tc.o)
			const burst = 50
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range burst {
				wg.Go(func() {
					<-start
					if _, err := d.Plan(ctx, Request{Repository: "acme/lookups", Tag: "1"}); err != nil && tc.o.Projects != nil {
						t.Error(err)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := counted.infos.Load(); n < 1 || n > 2 {
				t.Errorf("%d swarm-manager questions for a burst of %d pushes, want 1 or 2", n, burst)
			}
			if n := counted.lists.Load(); n > tc.maxLists {
				t.Errorf("%d container lists for a burst of %d pushes, want at most %d", n, burst, tc.maxLists)
			}
			before := counted.infos.Load()
			if _, err := d.Plan(ctx, Request{Repository: "acme/lookups", Tag: "1"}); err != nil && tc.o.Projects != nil {
				t.Fatal(err)
			}
			if n := counted.infos.Load() - before; n != 0 {
				t.Errorf("a push right after the burst asked the engine %d more times whether it is a swarm manager, want 0", n)
			}
			// An answer past its age is refreshed behind the push that finds it: see TestManagerAnswerShared in deployer/swarm.
		})
	}
}
