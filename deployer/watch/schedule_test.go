package watch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestScheduleSpreadsChecks: 50 services with a 1h interval on a controlled clock are each
// checked once in the first hour, spread over it (no ten minutes with more than a third of
// them), and again about an hour later, never sooner than 54 minutes (interval less a tenth).
func TestScheduleSpreadsChecks(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := start
	rng := rand.New(rand.NewPCG(1, 2))
	r := NewRunner(NewSchedule(rng.Int64N), 4, func() time.Time { return clock })
	intervals := map[string]time.Duration{}
	for i := range 50 {
		intervals[fmt.Sprintf("p/s%02d", i)] = time.Hour
	}
	var mu sync.Mutex
	checks := map[string][]time.Time{}
	check := func(_ context.Context, key string) error {
		mu.Lock()
		defer mu.Unlock()
		checks[key] = append(checks[key], clock)
		return nil
	}
	for ; clock.Before(start.Add(2*time.Hour + 10*time.Minute)); clock = clock.Add(30 * time.Second) {
		r.Tick(context.Background(), intervals, check)
		r.Wait()
	}
	var buckets [6]int
	for key, at := range checks {
		if len(at) < 2 {
			t.Fatalf("%s checked %d times in 2h10m with a 1h interval", key, len(at))
		}
		buckets[at[0].Sub(start)/(10*time.Minute)]++
		for i := 1; i < len(at); i++ {
			if gap := at[i].Sub(at[i-1]); gap < 54*time.Minute {
				t.Errorf("%s checked again after %s", key, gap)
			}
		}
	}
	if len(checks) != 50 {
		t.Fatalf("%d services checked, want 50", len(checks))
	}
	for i, n := range buckets {
		if n > 50/3 {
			t.Errorf("%d first checks in minutes %d-%d, want them spread (%v)", n, i*10, i*10+10, buckets)
		}
	}
}

// TestRunnerLimitsChecksInFlight: with 50 services due at once and checks that do not end
// until released, no more than the limit run at a time, and every service is checked.
func TestRunnerLimitsChecksInFlight(t *testing.T) {
	const limit = 3
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRunner(NewSchedule(func(int64) int64 { return 0 }), limit, func() time.Time { return clock })
	intervals := map[string]time.Duration{}
	for i := range 50 {
		intervals[fmt.Sprintf("p/s%02d", i)] = time.Hour
	}
	var inflight, most, done atomic.Int64
	release := make(chan struct{})
	check := func(context.Context, string) error {
		n := inflight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inflight.Add(-1)
		done.Add(1)
		return nil
	}
	r.Tick(context.Background(), intervals, check)
	r.Tick(context.Background(), intervals, check) // no free slot: starts nothing
	if most.Load() > limit {
		t.Fatalf("%d checks in flight, limit %d", most.Load(), limit)
	}
	close(release)
	for i := 0; i < 100 && done.Load() < 50; i++ {
		r.Wait()
		r.Tick(context.Background(), intervals, check)
	}
	r.Wait()
	if done.Load() != 50 || most.Load() > limit {
		t.Fatalf("%d of 50 checked, at most %d in flight (limit %d)", done.Load(), most.Load(), limit)
	}
}

// TestBackoffDoublesWithoutRetryAfter: refused checks back off one, two, four… intervals,
// capped at 32; a check that succeeds returns to the interval.
func TestBackoffDoublesWithoutRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSchedule(func(int64) int64 { return 0 })
	s.Keep(map[string]time.Duration{"p/a": time.Minute}, now)
	for _, want := range []time.Duration{1, 2, 4, 8, 16, 32, 32} {
		s.Due(now, 1)
		s.Done("p/a", now, time.Minute, true, 0)
		if got := s.Next("p/a").Sub(now); got != want*time.Minute {
			t.Fatalf("backoff %s, want %s", got, want*time.Minute)
		}
	}
	s.Done("p/a", now, time.Minute, false, 0)
	if got := s.Next("p/a").Sub(now); got != 54*time.Second {
		t.Fatalf("after a success next in %s, want the interval less a tenth (jitter 0)", got)
	}
}

// TestScheduleNow: an approval brings a check forward to now, but never ahead of a backoff the
// registry asked for.
func TestScheduleNow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := NewSchedule(func(int64) int64 { return 0 })
	s.Keep(map[string]time.Duration{"p/a": time.Hour, "p/b": time.Hour}, now)
	s.Due(now, 2)
	s.Done("p/a", now, time.Hour, false, 0)
	s.Done("p/b", now, time.Hour, true, 2*time.Hour)
	later := now.Add(time.Minute)
	s.Now("p/a", later)
	s.Now("p/b", later)
	if got := s.Next("p/a"); !got.Equal(later) {
		t.Errorf("p/a next at %s, want now (%s)", got, later)
	}
	if got := s.Next("p/b"); !got.Equal(now.Add(2 * time.Hour)) {
		t.Errorf("p/b next at %s, want its Retry-After (%s)", got, now.Add(2*time.Hour))
	}
}

// TestRunnerDrainsDueChecksInOneTick: a slot whose check ended takes the next due one, so ten
// due services are all checked after one tick with two slots (not two a tick).
func TestRunnerDrainsDueChecksInOneTick(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := NewRunner(NewSchedule(func(int64) int64 { return 0 }), 2, func() time.Time { return now })
	intervals := map[string]time.Duration{}
	for i := range 10 {
		intervals[fmt.Sprintf("p/s%d", i)] = time.Hour
	}
	var checked atomic.Int32
	r.Tick(context.Background(), intervals, func(context.Context, string) error { checked.Add(1); return nil })
	r.Wait()
	if n := checked.Load(); n != 10 {
		t.Fatalf("%d of 10 due services checked after one tick", n)
	}
}
