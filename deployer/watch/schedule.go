package watch

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// Schedule says when each watched service is checked next. A service's first check falls at
// a random point of its first interval and each next one an interval later, give or take a
// tenth, so 50 services on one registry are spread over the interval rather than checked at
// once. A check the registry refused (429, 5xx) backs off exponentially, and never sooner
// than its Retry-After. It keeps no clock of its own: callers pass now.
type Schedule struct {
	mu    sync.Mutex
	next  map[string]time.Time
	fails map[string]int
	busy  map[string]bool
	rand  func(n int64) int64 // [0, n)
}

// NewSchedule returns an empty schedule; rand (nil = math/rand) picks the jitter.
func NewSchedule(rand func(int64) int64) *Schedule {
	if rand == nil {
		rand = randInt64N
	}
	return &Schedule{next: map[string]time.Time{}, fails: map[string]int{}, busy: map[string]bool{}, rand: rand}
}

func randInt64N(n int64) int64 { return rand.Int64N(n) }

// maxBackoff bounds the exponential backoff, in intervals.
const maxBackoff = 32

// Keep makes the schedule know exactly the services in intervals (key → interval): a new one
// gets its first check within an interval from now, one no longer watched is forgotten.
func (s *Schedule) Keep(intervals map[string]time.Duration, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, iv := range intervals {
		if _, ok := s.next[k]; !ok {
			s.next[k] = now.Add(time.Duration(s.rand(int64(max(iv, 1)))))
		}
	}
	for k := range s.next {
		if _, ok := intervals[k]; !ok {
			delete(s.next, k)
			delete(s.fails, k)
		}
	}
}

// Due lists the services whose check is due at now and not running, soonest first, up to
// limit of them, and marks them running until Done.
func (s *Schedule) Due(now time.Time, limit int) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []string
	for k, at := range s.next {
		if !at.After(now) && !s.busy[k] {
			due = append(due, k)
		}
	}
	slices.SortFunc(due, func(a, b string) int { return s.next[a].Compare(s.next[b]) })
	due = due[:min(len(due), max(limit, 0))]
	for _, k := range due {
		s.busy[k] = true
	}
	return due
}

// Done schedules key's next check after one that ended at now: an interval later with jitter,
// or, when the registry refused it (throttled), later by the backoff and at least retryAfter.
func (s *Schedule) Done(key string, now time.Time, interval time.Duration, throttled bool, retryAfter time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, key)
	if _, ok := s.next[key]; !ok {
		return // no longer watched
	}
	if !throttled {
		s.fails[key] = 0
		s.next[key] = now.Add(interval - interval/10 + time.Duration(s.rand(int64(max(interval/5, 1)))))
		return
	}
	s.fails[key]++
	backoff := interval * time.Duration(min(1<<(s.fails[key]-1), maxBackoff))
	s.next[key] = now.Add(max(backoff, retryAfter))
}

// Now makes key's next check due at now, unless the registry asked it to wait (a backoff):
// an approval by hand is acted on at once rather than an interval later.
func (s *Schedule) Now(key string, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if at, ok := s.next[key]; ok && s.fails[key] == 0 && at.After(now) {
		s.next[key] = now
	}
}

// Release gives back a check Due handed out but nobody ran: it stays due.
func (s *Schedule) Release(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.busy, key)
}

// Next is when key is checked next; zero when it is not scheduled.
func (s *Schedule) Next(key string) time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.next[key]
}
