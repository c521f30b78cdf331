package state

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// Lock takes the lock a berth process holds on the project's service for the whole of a
// deploy, so that two processes sharing STATE_DIR never deploy it at once nor repair each
// other's live journal. It is a file lock, so it goes with its process, crash included. While
// another process holds it, Lock calls onWait once and waits until it is free or ctx ends.
// Without STATE_DIR there is nothing to share and nothing to lock.
func (d Dir) Lock(ctx context.Context, project, service string, onWait func()) (unlock func(), err error) {
	f, err := d.openLock(project, service)
	if f == nil || err != nil {
		return func() {}, err
	}
	waited := false
	for {
		ok, err := tryFlock(f)
		if err != nil {
			f.Close()
			return nil, err
		}
		if ok {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !waited {
			onWait()
			waited = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// TryLock takes the service's lock (see Lock) if it is free; ok is false when another process
// holds it.
func (d Dir) TryLock(project, service string) (unlock func(), ok bool, err error) {
	f, err := d.openLock(project, service)
	if err != nil {
		return nil, false, err
	}
	if f == nil {
		return func() {}, true, nil
	}
	if ok, err = tryFlock(f); !ok || err != nil {
		f.Close()
		return nil, false, err
	}
	return func() { f.Close() }, true, nil
}

// openLock opens the service's lock file, creating it; nil without STATE_DIR.
func (d Dir) openLock(project, service string) (*os.File, error) {
	if !d.Persistent() {
		return nil, nil
	}
	path := d.lock(project, service)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("service lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("service lock: %w", err)
	}
	return f, nil
}

// tryFlock takes f's exclusive lock without waiting; ok is false when another holder has it.
func tryFlock(f *os.File) (ok bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if err == nil {
		return true, nil
	}
	if err != syscall.EWOULDBLOCK {
		return false, fmt.Errorf("service lock %s: %w", f.Name(), err)
	}
	return false, nil
}
