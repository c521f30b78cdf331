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
	mu    sync.Mutex
	every map[string]time.Duration // the newest Tick's intervals: a running goroutine may take a key a later Tick added
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

// Tick makes the schedule know the services in intervals and starts the due checks that fit
// in the free slots, each on a goroutine of its own; a goroutine whose check ends takes the next
// due one, so a slot never idles while checks are due (they are not held to one round per
// tick). A check that returns a *Throttled error backs its service off.
func (r *Runner) Tick(ctx context.Context, intervals map[string]time.Duration, check func(ctx context.Context, key string) error) {
	r.mu.Lock()
	r.every = intervals
	r.mu.Unlock()
	r.sched.Keep(intervals, r.now())
	for _, key := range r.sched.Due(r.now(), cap(r.slots)-len(r.slots)) {
		r.slots <- struct{}{}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			for {
				r.run(ctx, key, r.interval(key), check)
				next := r.sched.Due(r.now(), 1)
				if len(next) == 0 || ctx.Err() != nil {
					for _, k := range next {
						r.sched.Release(k)
					}
					return
				}
				key = next[0]
			}
		}()
	}
}

func (r *Runner) interval(key string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.every[key]
}

// run runs key's check and schedules its next one.
func (r *Runner) run(ctx context.Context, key string, interval time.Duration, check func(ctx context.Context, key string) error) {
	err := check(ctx, key)
	var th *Throttled
	throttled := errors.As(err, &th)
	var after time.Duration
	if throttled {
		after = th.RetryAfter
	}
	r.sched.Done(key, r.now(), interval, throttled, after)
}

// Wait blocks until every check started has ended.
func (r *Runner) Wait() { r.wg.Wait() }
