package deployer

import (
	"context"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
)

// sharedCalls lets calls that arrive together share one run of an expensive read (a compose
// project load, about 1.5 ms of CPU; an engine round trip): a webhook burst costs a couple of
// runs instead of one per call. A call only ever joins a run that starts after it arrived, so
// it sees the world as it was when it came in, or newer, exactly as if it had run it itself.
type sharedCalls[T any] struct {
	mu      sync.Mutex
	idle    *sync.Cond
	waiting map[string]*sharedCall[T] // per key, the run not started yet that new calls join
	running map[string]bool
}

// sharedCall is one run and the calls waiting for it. Its value is shared read-only.
type sharedCall[T any] struct {
	done  chan struct{}
	value T
	err   error
}

func newSharedCalls[T any]() *sharedCalls[T] {
	s := &sharedCalls[T]{waiting: map[string]*sharedCall[T]{}, running: map[string]bool{}}
	s.idle = sync.NewCond(&s.mu)
	return s
}

// do returns fn's result from a run for key that started after this call arrived. The caller
// must not modify the value: other calls hold it too.
func (s *sharedCalls[T]) do(ctx context.Context, key string, fn func(context.Context) (T, error)) (T, error) {
	s.mu.Lock()
	if c := s.waiting[key]; c != nil {
		s.mu.Unlock()
		select {
		case <-c.done:
			return c.value, c.err
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
	}
	c := &sharedCall[T]{done: make(chan struct{})}
	s.waiting[key] = c
	for s.running[key] { // the run under way started before some of the calls now waiting
		s.idle.Wait()
	}
	delete(s.waiting, key)
	s.running[key] = true
	s.mu.Unlock()

	// Not the caller's context: the calls that joined must not fail because this one left.
	c.value, c.err = fn(context.WithoutCancel(ctx))
	close(c.done)

	s.mu.Lock()
	delete(s.running, key)
	s.idle.Broadcast()
	s.mu.Unlock()
	return c.value, c.err
}

// projectLoads shares compose project loads between Deploy calls that arrive together.
type projectLoads struct {
	calls *sharedCalls[*types.Project]
	load  func(context.Context, ProjectSpec) (*types.Project, error)
}

func newProjectLoads(load func(context.Context, ProjectSpec) (*types.Project, error)) *projectLoads {
	return &projectLoads{calls: newSharedCalls[*types.Project](), load: load}
}

// get returns spec's project from a load that started after this call. The caller must not
// modify the project: other calls hold it too.
func (l *projectLoads) get(ctx context.Context, spec ProjectSpec) (*types.Project, error) {
	return l.calls.do(ctx, spec.Key(), func(ctx context.Context) (*types.Project, error) {
		return l.load(ctx, spec)
	})
}
