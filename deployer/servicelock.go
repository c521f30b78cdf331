package deployer

import (
	"context"
)

// lockService takes the lock a berth process holds on a service for the whole of a deploy. In
// one process the queue already runs one deploy per service; the lock is for two processes
// sharing STATE_DIR — `berth deploy` beside a running `berth serve`, or a serve starting while
// a CLI deploy runs — which must neither recreate the same containers at once nor "repair" the
// other's live journal as if a crash had left it (see state.Dir.Lock). With wait, it waits
// (logging once) until the lock is free or ctx ends; without, ok is false when another process
// holds it.
func (d *Deployer) lockService(ctx context.Context, project, service string, wait bool) (unlock func(), ok bool, err error) {
	if !wait {
		return d.state.TryLock(project, service)
	}
	unlock, err = d.state.Lock(ctx, project, service, func() {
		d.log.Info("waiting for another berth process's deploy of the service to end", "project", project, "service", service)
	})
	return unlock, err == nil, err
}
