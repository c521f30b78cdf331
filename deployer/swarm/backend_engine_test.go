package swarm

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/registry"
)

// infoCounter is the real engine, counting how often it is asked whether it is a swarm manager.
type infoCounter struct {
	*client.Client
	infos atomic.Int32
}

func (e *infoCounter) Info(ctx context.Context, o client.InfoOptions) (client.SystemInfoResult, error) {
	e.infos.Add(1)
	return e.Client.Info(ctx, o)
}

// A burst of pushes asks the engine whether it is a swarm manager once or twice, the pushes
// after it not at all, and an answer past its age is refreshed behind the push that finds it.
// (deployer's TestPushesShareEngineLookups drives the same through Plan.)
func TestManagerAnswerShared(t *testing.T) {
	counted := &infoCounter{Client: deployertest.Engine(t)}
	b := New(counted, Options{})
	ctx := context.Background()
	pushed, err := registry.ParseRef("acme/lookups:1")
	if err != nil {
		t.Fatal(err)
	}
	find := func() {
		if _, _, err := b.Find(ctx, pushed); err != nil {
			t.Error(err)
		}
	}
	const burst = 50
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range burst {
		wg.Go(func() {
			<-start
			find()
		})
	}
	close(start)
	wg.Wait()
	if n := counted.infos.Load(); n < 1 || n > 2 {
		t.Errorf("%d swarm-manager questions for a burst of %d pushes, want 1 or 2", n, burst)
	}
	before := counted.infos.Load()
	find()
	if n := counted.infos.Load() - before; n != 0 {
		t.Errorf("a push right after the burst asked the engine %d more times whether it is a swarm manager, want 0", n)
	}
	b.mu.Lock()
	b.ttl = 0
	b.mu.Unlock()
	find()
	deployertest.Eventually(t, "the background refresh", 30*time.Second, func() bool { return counted.infos.Load() > before })
}
