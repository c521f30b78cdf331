package handler

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxSkew is how far a signed timestamp may be from berth's clock, either way: the tolerance
// the Standard Webhooks reference libraries use.
const maxSkew = 5 * time.Minute

// recent remembers the last delivery keys it was given, up to a fixed number, oldest forgotten
// first. Keys are stored as hashes, so a long id costs no more memory than a short one.
type recent struct {
	mu   sync.Mutex
	set  map[[sha256.Size]byte]struct{}
	ring [][sha256.Size]byte
	next int
}

func newRecent(size int) *recent {
	if size <= 0 {
		size = 4096
	}
	return &recent{set: make(map[[sha256.Size]byte]struct{}, size), ring: make([][sha256.Size]byte, 0, size)}
}

// add records key and reports whether it was new.
func (r *recent) add(key string) bool {
	h := sha256.Sum256([]byte(key))
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.set[h]; ok {
		return false
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, h)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = h
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[h] = struct{}{}
	return true
}

// remove forgets key, so that a delivery that failed is not taken for a duplicate when the
// sender retries it. Its ring slot stays until overwritten, which may forget a re-added key
// early: that only weakens duplicate detection for that one key.
func (r *recent) remove(key string) {
	h := sha256.Sum256([]byte(key))
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.set, h)
}

// checkTimestamp refuses a signed timestamp outside ±maxSkew of now: a captured delivery
// cannot be replayed once its id has been forgotten.
func checkTimestamp(sent, now time.Time) error {
	if d := now.Sub(sent); d > maxSkew || d < -maxSkew {
		return staleError{sent: sent, now: now}
	}
	return nil
}
