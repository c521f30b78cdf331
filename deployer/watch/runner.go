package watch

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Runner starts the checks a Schedule says are due, never more than its limit at once.
type Runner struct {
	sched *Schedule
	slots chan struct{}
	now   func() time.Time
	wg    sync.WaitGroup
}

// DefaultLimit is the number of checks in flight at most when WATCH_PARALLEL does not say.
const DefaultLimit = 4

// NewRunner returns a runner of sched's checks, limit (default DefaultLimit) at a time, on
// the clock now (nil = time.Now).
func NewRunner(sched *Schedule, limit int, now func() time.Time) *Runner {
	if limit < 1 {
		limit = DefaultLimit
	}
	if now == nil {
		now = time.Now
	}
	return &Runner{sched: sched, slots: make(chan struct{}, limit), now: now}
}

// Tick makes the schedule know the services in intervals and starts, each on a goroutine of
// its own, the due checks that fit in the free slots; the others stay due for the next tick.
// A check that returns a *Throttled error backs its service off.
func (r *Runner) Tick(ctx context.Context, intervals map[string]time.Duration, check func(ctx context.Context, key string) error) {
	r.sched.Keep(intervals, r.now())
	for _, key := range r.sched.Due(r.now(), cap(r.slots)-len(r.slots)) {
		r.slots <- struct{}{}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			err := check(ctx, key)
			<-r.slots
			var th *Throttled
			throttled := errors.As(err, &th)
			var after time.Duration
			if throttled {
				after = th.RetryAfter
			}
			r.sched.Done(key, r.now(), intervals[key], throttled, after)
		}()
	}
}

// Wait blocks until every check started has ended.
func (r *Runner) Wait() { r.wg.Wait() }
