package deployer

import (
	"context"
	"sync"
)

// queue runs jobs one at a time per key and up to a limit across keys. While a key's job runs,
// newer submissions for it collapse into a single follow-up: only the newest waiting push is
// worth deploying.
type queue struct {
	mu    sync.Mutex
	slots map[string]*slot
	limit chan struct{}
	wg    sync.WaitGroup
	run   func(context.Context, job)
	ctx   context.Context
}

type slot struct {
	next *job // the newest job waiting behind the running one
}

func newQueue(ctx context.Context, parallel int, run func(context.Context, job)) *queue {
	if parallel < 1 {
		parallel = 1
	}
	return &queue{slots: map[string]*slot{}, limit: make(chan struct{}, parallel), run: run, ctx: ctx}
}

// submit queues j under key and reports whether it replaced a job that was already waiting.
func (q *queue) submit(key string, j job) (coalesced bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if s, busy := q.slots[key]; busy {
		coalesced = s.next != nil
		if s.next == nil || !j.req.PushedAt.Before(s.next.req.PushedAt) {
			s.next = &j
		}
		return coalesced
	}
	q.slots[key] = &slot{}
	q.wg.Add(1)
	go q.drain(key, j)
	return false
}

func (q *queue) drain(key string, j job) {
	defer q.wg.Done()
	for {
		q.limit <- struct{}{}
		q.run(context.WithValue(q.ctx, slotKey{}, q.limit), j)
		<-q.limit

		q.mu.Lock()
		s := q.slots[key]
		if s.next == nil {
			delete(q.slots, key)
			q.mu.Unlock()
			return
		}
		j, s.next = *s.next, nil
		q.mu.Unlock()
	}
}

// waiting says whether a newer job for key waits behind the running one.
func (q *queue) waiting(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	s, ok := q.slots[key]
	return ok && s.next != nil
}

// busy says whether a job for key is running or waiting.
func (q *queue) busy(key string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	_, ok := q.slots[key]
	return ok
}

// depth is the number of keys with a job running or waiting.
func (q *queue) depth() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.slots)
}

// wait blocks until every queued job has finished or ctx ends.
func (q *queue) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// slotKey marks the context of a job that holds one of the queue's slots (its value is the
// queue's limit channel).
type slotKey struct{}

// unlimited runs fn outside the deploy slot ctx's job holds, if any, and takes a slot again
// afterwards: for waits on something other than this host, like a registry, which must not
// keep other services' deploys waiting.
func unlimited(ctx context.Context, fn func()) {
	limit, ok := ctx.Value(slotKey{}).(chan struct{})
	if !ok {
		fn()
		return
	}
	<-limit
	defer func() { limit <- struct{}{} }()
	fn()
}
