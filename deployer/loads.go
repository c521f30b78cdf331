package deployer

import (
	"context"
	"fmt"
	"sync"

	"github.com/compose-spec/compose-go/v2/types"
)

// projectLoads lets Deploy calls that arrive together share one compose project load: a
// webhook burst costs a couple of loads (about 1.5 ms of CPU each) instead of one per call.
// A call only ever joins a load that starts after it arrived, so it sees the files as they
// were when it came in, or newer, exactly as if it had loaded them itself.
type projectLoads struct {
	mu      sync.Mutex
	idle    *sync.Cond
	waiting map[string]*projectLoad // per spec, the load not started yet that new calls join
	running map[string]bool
	load    func(context.Context, ProjectSpec) (*types.Project, error)
}

// projectLoad is one load and the calls waiting for it. The project is shared read-only.
type projectLoad struct {
	done    chan struct{}
	project *types.Project
	err     error
}

func newProjectLoads(load func(context.Context, ProjectSpec) (*types.Project, error)) *projectLoads {
	l := &projectLoads{waiting: map[string]*projectLoad{}, running: map[string]bool{}, load: load}
	l.idle = sync.NewCond(&l.mu)
	return l
}

// get returns spec's project from a load that started after this call. The caller must not
// modify the project: other calls hold it too.
func (l *projectLoads) get(ctx context.Context, spec ProjectSpec) (*types.Project, error) {
	key := fmt.Sprintf("%#v", spec)
	l.mu.Lock()
	if pl := l.waiting[key]; pl != nil {
		l.mu.Unlock()
		select {
		case <-pl.done:
			return pl.project, pl.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	pl := &projectLoad{done: make(chan struct{})}
	l.waiting[key] = pl
	for l.running[key] { // the load under way started before some of the calls now waiting
		l.idle.Wait()
	}
	delete(l.waiting, key)
	l.running[key] = true
	l.mu.Unlock()

	// Not the caller's context: the calls that joined must not fail because this one left.
	pl.project, pl.err = l.load(context.WithoutCancel(ctx), spec)
	close(pl.done)

	l.mu.Lock()
	delete(l.running, key)
	l.idle.Broadcast()
	l.mu.Unlock()
	return pl.project, pl.err
}
