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
// first; a key added with a time to live is forgotten when that passes. Keys are stored as
// hashes, so a long id costs no more memory than a short one.
type recent struct {
	mu   sync.Mutex
	set  map[[sha256.Size]byte]time.Time // key → when it expires; zero: never
	ring [][sha256.Size]byte
	next int
}

func newRecent(size int) *recent {
	if size <= 0 {
		size = 4096
	}
	return &recent{set: make(map[[sha256.Size]byte]time.Time, size), ring: make([][sha256.Size]byte, 0, size)}
}

// add records key at now, remembered for ttl (0: until pushed out), and reports whether it
// was new or had expired.
func (r *recent) add(key string, now time.Time, ttl time.Duration) bool {
	h := sha256.Sum256([]byte(key))
	r.mu.Lock()
	defer r.mu.Unlock()
	expires := time.Time{}
	if ttl > 0 {
		expires = now.Add(ttl)
	}
	if until, ok := r.set[h]; ok {
		if until.IsZero() || now.Before(until) {
			return false
		}
		r.set[h] = expires // its ring slot is still its own
		return true
	}
	if len(r.ring) < cap(r.ring) {
		r.ring = append(r.ring, h)
	} else {
		delete(r.set, r.ring[r.next])
		r.ring[r.next] = h
		r.next = (r.next + 1) % len(r.ring)
	}
	r.set[h] = expires
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
