package handler

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// MaxHeaderBytes bounds a request's header block; webhook senders send a few KiB at most.
// net/http answers a larger one with 431 before berth sees it.
const MaxHeaderBytes = 16 << 10

// Limits bound what failed authentications and concurrent requests may cost berth.
type Limits struct {
	// AuthBurst is how many failed authentications one client address may make before it is
	// refused with 429; 10 when 0.
	AuthBurst int
	// AuthRefill is how long it takes for one more failure to be allowed; 30s when 0.
	AuthRefill time.Duration
	// MaxConcurrent bounds the requests handled at once; an address that has failed
	// authentication may take a quarter of them, so it cannot crowd the others out. 64 when 0.
	MaxConcurrent int
	// QueueWait is how long a request past MaxConcurrent waits for a slot before it is
	// refused with 503; at most 4×MaxConcurrent wait at once. 5s when 0. A registry's burst
	// of valid pushes is answered a little later, not refused.
	QueueWait time.Duration
	// TrustedProxies are the peers whose forwarding headers name the client.
	TrustedProxies TrustedProxies
	// Now is the limiter's clock; time.Now when nil.
	Now func() time.Time
	// MaxTracked bounds the addresses whose failures are remembered; 10000 when 0.
	MaxTracked int
}

func (l Limits) withDefaults() Limits {
	if l.AuthBurst == 0 {
		l.AuthBurst = 10
	}
	if l.AuthRefill == 0 {
		l.AuthRefill = 30 * time.Second
	}
	if l.MaxConcurrent == 0 {
		l.MaxConcurrent = 64
	}
	if l.QueueWait == 0 {
		l.QueueWait = 5 * time.Second
	}
	if l.Now == nil {
		l.Now = time.Now
	}
	if l.MaxTracked == 0 {
		l.MaxTracked = 10000
	}
	return l
}

// rateLimitedError refuses an address that failed authentication too often.
type rateLimitedError struct{ retry time.Duration }

func (e rateLimitedError) Error() string {
	return fmt.Sprintf("too many failed authentications from this address; retry in %s", ceilSecond(e.retry))
}

// retryAfter is how long the address is still blocked.
func (e rateLimitedError) retryAfter() time.Duration { return e.retry }

// busyError refuses a request while berth handles as many as it allows.
type busyError struct{ perClient bool }

// retryAfter: a slot frees up as soon as one request is answered.
func (busyError) retryAfter() time.Duration { return time.Second }

func (e busyError) Error() string {
	if e.perClient {
		return "too many requests from this address at once; retry shortly"
	}
	return "berth is handling too many requests at once; retry shortly"
}

// protect wraps next with the abuse limits: the client address from TrustedProxies (it
// replaces RemoteAddr, so every log line names the real client), the failure limiter and the
// concurrency bounds.
//
// Only failed authentications (401) consume an address's tokens, so a sender that holds a
// valid credential never limits itself, and senders at other addresses are never slowed. An
// address with no token left is refused before its credential is checked: otherwise the
// 429s would still tell a guesser which guess was right.
func protect(next http.Handler, lim Limits, log *slog.Logger) http.Handler {
	lim = lim.withDefaults()
	failures := &failureLimiter{burst: float64(lim.AuthBurst), refill: lim.AuthRefill, max: lim.MaxTracked, buckets: map[netip.Addr]*bucket{}}
	conc := newConcurrency(lim.MaxConcurrent, lim.QueueWait)
	var warnOnce sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		client, forwarded := lim.TrustedProxies.clientAddr(r)
		peer := r.RemoteAddr
		attrs := []any{"remote", peer}
		if client != peerAddr(peer) {
			r = r.WithContext(r.Context())
			r.RemoteAddr = client.String()
			attrs = []any{"remote", r.RemoteAddr, "peer", peer}
		} else if forwarded {
			warnOnce.Do(func() {
				log.Warn("a request carries X-Forwarded-For or Forwarded from a peer outside TRUSTED_PROXIES; berth ignores those headers. If berth is behind a reverse proxy, set TRUSTED_PROXIES to its network, or every client shares the proxy's rate limit",
					"peer", peer)
			})
		}
		key := limiterKey(client)
		attrs = append(attrs, "limiter_key", key)
		if wait := failures.wait(key, lim.Now()); wait > 0 {
			writeError(w, log, limitsRefused, rateLimitedError{wait}, attrs...)
			return
		}
		// Only an address that has failed authentication is held to its share of the slots:
		// a valid sender's burst is never refused for coming from one address.
		if ok, perClient := conc.acquire(r.Context(), key, failures.has(key)); !ok {
			writeError(w, log, limitsRefused, busyError{perClient}, attrs...)
			return
		}
		defer conc.release(key)
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == http.StatusUnauthorized {
			if wait := ceilSecond(failures.fail(key, lim.Now())); wait > 0 {
				log.Warn("client rate-limited after repeated failed authentications", append(attrs, "retry_after", wait)...)
			}
		}
	})
}

// ceilSecond rounds d up to whole seconds, for Retry-After and messages.
func ceilSecond(d time.Duration) time.Duration {
	return time.Duration(math.Ceil(d.Seconds())) * time.Second
}

// limiterKey is the unit an address is limited as: an IPv4 address, or an IPv6 /64, which
// one host usually holds whole.
func limiterKey(a netip.Addr) netip.Addr {
	if a.Is6() && !a.Is4In6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a.Unmap()
}

// statusWriter remembers the status the handler answered with.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// bucket is one address's token bucket of allowed failures.
type bucket struct {
	tokens float64
	last   time.Time
}

// failureLimiter holds a token bucket per address that has failed; addresses that never
// failed take no memory.
type failureLimiter struct {
	mu      sync.Mutex
	burst   float64
	refill  time.Duration
	max     int
	buckets map[netip.Addr]*bucket
}

// level refills b up to now and returns its tokens.
func (l *failureLimiter) level(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+float64(d)/float64(l.refill))
		b.last = now
	}
	return b.tokens
}

// wait is how long key must wait before its next request is looked at; 0 when it may go on.
func (l *failureLimiter) wait(key netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return 0
	}
	return l.until(l.level(b, now))
}

func (l *failureLimiter) until(tokens float64) time.Duration {
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(l.refill))
}

// has says whether key failed recently enough to hold a bucket.
func (l *failureLimiter) has(key netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, ok := l.buckets[key]
	return ok
}

// fail takes a token from key and returns how long it is now blocked (0 if not).
func (l *failureLimiter) fail(key netip.Addr, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		l.makeRoom(now)
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = max(l.level(b, now)-1, 0)
	return l.until(b.tokens)
}

// makeRoom keeps the table bounded: buckets that refilled are forgotten first (they hold
// nothing), then arbitrary ones, which only lets those addresses start a fresh burst.
func (l *failureLimiter) makeRoom(now time.Time) {
	if len(l.buckets) < l.max {
		return
	}
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.max {
			break
		}
		delete(l.buckets, k)
	}
}

// concurrency bounds the requests in flight, in total and per client address.
type concurrency struct {
	slots      chan struct{} // a token per request being handled
	wait       time.Duration
	maxWaiting int64
	waiting    atomic.Int64

	mu        sync.Mutex
	perClient int
	inflight  map[netip.Addr]int // handled or waiting, per address
}

func newConcurrency(total int, wait time.Duration) *concurrency {
	return &concurrency{slots: make(chan struct{}, total), wait: wait, maxWaiting: 4 * int64(total),
		perClient: max(total/4, 1), inflight: map[netip.Addr]int{}}
}

// acquire takes a slot for key, held to its share when bounded, waiting for one up to c.wait
// when all are taken; perClient tells which bound refused it.
func (c *concurrency) acquire(ctx context.Context, key netip.Addr, bounded bool) (ok, perClient bool) {
	c.mu.Lock()
	if bounded && c.inflight[key] >= c.perClient {
		c.mu.Unlock()
		return false, true
	}
	c.inflight[key]++
	c.mu.Unlock()
	select {
	case c.slots <- struct{}{}:
		return true, false
	default:
	}
	if c.waiting.Add(1) > c.maxWaiting {
		c.waiting.Add(-1)
		c.forget(key)
		return false, false
	}
	defer c.waiting.Add(-1)
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	select {
	case c.slots <- struct{}{}:
		return true, false
	case <-timer.C:
	case <-ctx.Done():
	}
	c.forget(key)
	return false, false
}

func (c *concurrency) release(key netip.Addr) {
	<-c.slots
	c.forget(key)
}

func (c *concurrency) forget(key netip.Addr) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inflight[key]--; c.inflight[key] <= 0 {
		delete(c.inflight, key)
	}
}
