package deployer

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockService takes the lock a berth process holds on a service for the whole of a deploy. In
// one process the queue already runs one deploy per service; the lock is for two processes
// sharing STATE_DIR — `berth deploy` beside a running `berth serve`, or a serve starting while
// a CLI deploy runs — which must neither recreate the same containers at once nor "repair" the
// other's live journal as if a crash had left it. It is a file lock in STATE_DIR/locks, so it
// goes with its process, crash included. With wait, it waits (logging once) until the lock is
// free or ctx ends; without, ok is false when another process holds it. Without STATE_DIR
// there is nothing to share and nothing to lock.
func (d *Deployer) lockService(ctx context.Context, project, service string, wait bool) (unlock func(), ok bool, err error) {
	if d.stateDir == "" {
		return func() {}, true, nil
	}
	path := filepath.Join(d.stateDir, "locks", safeFileName(project+"__"+service)+".lock")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("service lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, false, fmt.Errorf("service lock: %w", err)
	}
	logged := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, true, nil // closing releases the lock
		}
		if err != syscall.EWOULDBLOCK {
			f.Close()
			return nil, false, fmt.Errorf("service lock %s: %w", path, err)
		}
		if !wait {
			f.Close()
			return nil, false, nil
		}
		if !logged {
			d.log.Info("waiting for another berth process's deploy of the service to end", "project", project, "service", service)
			logged = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
