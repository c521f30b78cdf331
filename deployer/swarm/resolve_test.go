package swarm

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/registry"
	swarmapi "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// stuckRegistryEngine is an engine whose registry lookups never answer (they end only with
// their context), which a real engine cannot be made to do on demand; it serves one service on
// acme/web:1 and counts updates.
type stuckRegistryEngine struct {
	updates atomic.Int32
}

func (e *stuckRegistryEngine) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	return client.ServiceListResult{}, errors.New("stub: not listed")
}
func (e *stuckRegistryEngine) ServiceInspect(context.Context, string, client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	svc := swarmapi.Service{ID: "web-id"}
	svc.Spec.Name = "shop_web"
	svc.Spec.TaskTemplate.ContainerSpec = &swarmapi.ContainerSpec{Image: "acme/web:1@sha256:" + sixtyFour}
	return client.ServiceInspectResult{Service: svc}, nil
}
func (e *stuckRegistryEngine) ServiceUpdate(context.Context, string, client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	e.updates.Add(1)
	return client.ServiceUpdateResult{}, errors.New("stub: no update")
}
func (e *stuckRegistryEngine) TaskList(context.Context, client.TaskListOptions) (client.TaskListResult, error) {
	return client.TaskListResult{}, errors.New("stub: no tasks")
}
func (e *stuckRegistryEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{}, errors.New("stub: no info")
}
func (e *stuckRegistryEngine) DistributionInspect(ctx context.Context, _ string, _ client.DistributionInspectOptions) (client.DistributionInspectResult, error) {
	<-ctx.Done()
	return client.DistributionInspectResult{}, ctx.Err()
}

// TestDigestLookupIsBounded: a push without a digest makes berth ask the registry (through the
// engine) which digest the tag names; a registry that never answers ends that lookup after
// REGISTRY_TIMEOUT, or at shutdown, and the service is left as it was.
func TestDigestLookupIsBounded(t *testing.T) {
	for _, tc := range []struct {
		name     string
		timeout  time.Duration
		shutdown bool   // berth shuts down while the lookup waits
		errHas   string // in the error
		is       error
	}{
		{"REGISTRY_TIMEOUT", 200 * time.Millisecond, false, "REGISTRY_TIMEOUT", context.DeadlineExceeded},
		{"shutdown", time.Hour, true, "", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eng := &stuckRegistryEngine{}
			shutdown, stop := context.WithCancel(context.Background())
			defer stop()
			b := New(eng, Options{RegistryTimeout: tc.timeout, Shutdown: shutdown})
			ref, err := registry.ParseRef("acme/web:1")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() {
				_, err := b.Update(context.Background(), slog.New(slog.DiscardHandler), Update{Service: "web-id", Image: ref})
				done <- err
			}()
			if tc.shutdown {
				stop()
			}
			select {
			case err := <-done:
				if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.errHas) {
					t.Errorf("update ended with %v, want %v mentioning %q", err, tc.is, tc.errHas)
				}
			case <-time.After(time.Minute):
				t.Fatal("the digest lookup was still waiting after a minute")
			}
			if n := eng.updates.Load(); n != 0 {
				t.Errorf("%d service updates sent, want none", n)
			}
		})
	}
}
