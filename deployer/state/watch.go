package state

import (
	"fmt"
	"sync"
	"time"
)

// WatchedDigest is what berth knows of the newest digest a watched service's tag named: when
// it was first seen (minimum age counts from there) and what was decided about it.
type WatchedDigest struct {
	Digest    string    `json:"digest"`
	FirstSeen time.Time `json:"first_seen"`
	Approved  bool      `json:"approved,omitempty"`
	Rejected  bool      `json:"rejected,omitempty"`
	Notified  bool      `json:"notified,omitempty"` // a notify-only service's report was sent
}

// Watched keeps, per service (project/service), its WatchedDigest: in watch.json when
// persistent, so a restart does not reset a minimum age, in memory otherwise.
type Watched struct {
	mu   sync.Mutex
	path string // "" = memory only
	seen map[string]WatchedDigest
}

// Watched opens watch.json, reading what an earlier berth left.
func (d Dir) Watched() (*Watched, error) {
	w := &Watched{seen: map[string]WatchedDigest{}}
	if !d.Persistent() {
		return w, nil
	}
	w.path = d.watchFile()
	if _, err := readJSON(w.path, &w.seen); err != nil {
		return nil, fmt.Errorf("watched digests %s: %w", w.path, err)
	}
	if w.seen == nil {
		w.seen = map[string]WatchedDigest{}
	}
	return w, nil
}

// Get returns what berth knows of service's newest digest.
func (w *Watched) Get(service string) (WatchedDigest, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, ok := w.seen[service]
	return wd, ok
}

// See records that service's tag names digest at now and returns what is known of it: the
// same digest keeps its first-seen time and decisions, a new one starts afresh.
func (w *Watched) See(service, digest string, now time.Time) (WatchedDigest, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wd, ok := w.seen[service]; ok && wd.Digest == digest {
		return wd, nil
	}
	wd := WatchedDigest{Digest: digest, FirstSeen: now.UTC()}
	return wd, w.putLocked(service, wd)
}

// Update changes service's record with fn if it is still about digest; it reports whether it was.
func (w *Watched) Update(service, digest string, fn func(*WatchedDigest)) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wd, ok := w.seen[service]
	if !ok || wd.Digest != digest {
		return false, nil
	}
	fn(&wd)
	return true, w.putLocked(service, wd)
}

// Forget drops service's record (it runs the digest, or is no longer watched).
func (w *Watched) Forget(service string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.seen[service]; !ok {
		return nil
	}
	delete(w.seen, service)
	return w.writeLocked()
}

func (w *Watched) putLocked(service string, wd WatchedDigest) error {
	w.seen[service] = wd
	return w.writeLocked()
}

func (w *Watched) writeLocked() error {
	if w.path == "" {
		return nil
	}
	if err := writeJSON(w.path, w.seen); err != nil {
		return fmt.Errorf("watched digests %s: %w", w.path, err)
	}
	return nil
}
