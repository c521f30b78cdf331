package handler

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// MaxHeaderBytes bounds a request's header block; webhook senders send a few KiB at most.
// net/http answers a larger one with 431 before berth sees it.
const MaxHeaderBytes = 16 << 10

// Limits bound what unauthenticated and concurrent requests may cost berth.
type Limits struct {
	// AuthBurst is how many failed authentications one client address may make before its
	// failures are answered 429; 10 when 0.
	AuthBurst int
	// AuthRefill is how long it takes for one more failure to be allowed; 30s when 0.
	AuthRefill time.Duration
	// MaxConcurrent bounds the authenticated requests handled at once; 64 when 0.
	MaxConcurrent int
	// QueueWait is how long an authenticated request past MaxConcurrent waits for a slot
	// before it is refused with 503; at most 4×MaxConcurrent wait at once. 5s when 0. A
	// registry's burst of valid pushes is answered a little later, not refused. A request
	// past PendingPerClient waits as long for a pending place.
	QueueWait time.Duration
	// BodyTimeout bounds the reading of a request's body, which happens before the request
	// is authenticated or takes a slot; 5s when 0.
	BodyTimeout time.Duration
	// PendingPerClient bounds one address's requests not yet authenticated once half of
	// MaxPending is taken; 8 when 0. One past it waits up to QueueWait for a place of its
	// address (at most 4×PendingPerClient wait), so a registry's burst from its few
	// addresses is answered, late at worst, not refused.
	PendingPerClient int
	// MaxPending bounds the requests not yet authenticated, all addresses together;
	// 16×MaxConcurrent when 0.
	MaxPending int
	// TrustedProxies are the peers whose forwarding header names the client.
	TrustedProxies TrustedProxies
	// ProxyHeader is the one forwarding header read from a trusted proxy; X-Forwarded-For when "".
	ProxyHeader string
	// Now is the limiter's clock; time.Now when nil.
	Now func() time.Time
	// MaxTracked bounds the addresses whose failures are remembered; 10000 when 0.
	MaxTracked int
}

func (l Limits) withDefaults() Limits {
	l.AuthBurst = cmp.Or(l.AuthBurst, 10)
	l.AuthRefill = cmp.Or(l.AuthRefill, 30*time.Second)
	l.MaxConcurrent = cmp.Or(l.MaxConcurrent, 64)
	l.QueueWait = cmp.Or(l.QueueWait, 5*time.Second)
	l.BodyTimeout = cmp.Or(l.BodyTimeout, 5*time.Second)
	l.PendingPerClient = cmp.Or(l.PendingPerClient, 8)
	l.MaxPending = cmp.Or(l.MaxPending, 16*l.MaxConcurrent)
	l.ProxyHeader = cmp.Or(l.ProxyHeader, "X-Forwarded-For")
	l.MaxTracked = cmp.Or(l.MaxTracked, 10000)
	if l.Now == nil {
		l.Now = time.Now
	}
	return l
}

// rateLimitedError refuses a failed authentication from an address that failed too often.
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
		return "too many unauthenticated requests from this address at once; retry shortly"
	}
	return "berth is handling too many requests at once; retry shortly"
}

// protect wraps next with the abuse limits, in the order a request meets them:
//
//  1. the client address from TrustedProxies' ProxyHeader (it replaces RemoteAddr, so every
//     log line names the real client);
//  2. an address rate-limited for failing too often is answered 429 at once, its body unread,
//     when hopeless(r) says no credential it carries could pass: reading and parsing the body
//     is most of what a flood costs, and such a request fails whatever its body says. One that
//     could pass goes on, because a genuine sender may share the flooded address;
//  3. a pending place: everyone together may have MaxPending requests not yet
//     authenticated, and once half of them are taken an address PendingPerClient (one more
//     waits up to QueueWait for a place of its address);
//  4. the body, read whole under BodyTimeout, so a slow sender holds only its own pending
//     place and never a slot;
//  5. the route checks the credential and calls admit: a valid one leaves the pending place
//     for one of the MaxConcurrent slots and is never throttled; a failed one takes a token
//     from its address and is answered 429 once the address has none left.
//
// GET /healthz skips all of it: it never waits behind webhooks.
func protect(next http.Handler, lim Limits, hopeless func(*http.Request) bool, log *slog.Logger) http.Handler {
	lim = lim.withDefaults()
	g := &guard{
		lim:      lim,
		failures: &failureLimiter{burst: float64(lim.AuthBurst), refill: lim.AuthRefill, max: lim.MaxTracked, buckets: map[netip.Addr]*bucket{}},
		pending:  newPending(lim.PendingPerClient, lim.MaxPending, lim.QueueWait),
		slots:    newConcurrency(lim.MaxConcurrent, lim.QueueWait),
		streams:  make(chan struct{}, maxStreams(lim.MaxConcurrent)),
		log:      log,
	}
	var warnOnce sync.Once
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == "/healthz" {
			next.ServeHTTP(w, r)
			return
		}
		client, forwarded := lim.TrustedProxies.clientAddr(r, lim.ProxyHeader)
		peer := r.RemoteAddr
		attrs := []any{"remote", peer}
		if client != peerAddr(peer) {
			r = r.WithContext(r.Context())
			r.RemoteAddr = client.String()
			attrs = []any{"remote", r.RemoteAddr, "peer", peer}
		} else if forwarded {
			warnOnce.Do(func() {
				log.Warn("a request carries "+lim.ProxyHeader+" from a peer outside TRUSTED_PROXIES; berth ignores it. If berth is behind a reverse proxy, set TRUSTED_PROXIES to its network, or every client shares the proxy's rate limit",
					"peer", peer)
			})
		}
		a := &admission{guard: g, key: limiterKey(client)}
		a.attrs = append(attrs, "limiter_key", a.key)
		if wait := g.failures.wait(a.key, lim.Now()); wait > 0 && hopeless(r) {
			writeError(w, log, limitsRefused, rateLimitedError{wait}, a.attrs...)
			return
		}
		if ok, perClient := g.pending.acquire(r.Context(), a.key); !ok {
			writeError(w, log, limitsRefused, busyError{perClient}, a.attrs...)
			return
		}
		a.pendingH = true
		defer a.done()
		body, err := readBody(w, r, lim.BodyTimeout)
		if err != nil {
			writeError(w, log, limitsRefused, err, a.attrs...)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), admissionKey{}, a))
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// slowBodyError refuses a body that did not arrive within Limits.BodyTimeout.
type slowBodyError struct{ limit time.Duration }

func (e slowBodyError) Error() string {
	return fmt.Sprintf("the request body did not arrive within %s", e.limit)
}

// readBody reads r's body whole, at most maxBody bytes, within timeout.
func readBody(w http.ResponseWriter, r *http.Request, timeout time.Duration) ([]byte, error) {
	rc := http.NewResponseController(w)
	deadline := time.Now().Add(timeout)
	timed := rc.SetReadDeadline(deadline) == nil
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err == nil {
		if timed {
			_ = rc.SetReadDeadline(time.Time{})
		}
		return body, nil
	}
	// The deadline stays as it is: net/http would otherwise wait for the rest of the body
	// before answering, and the connection closes after the answer.
	w.Header().Set("Connection", "close")
	var maxBytes *http.MaxBytesError
	switch {
	case errors.As(err, &maxBytes):
		return nil, err
	case errors.Is(err, os.ErrDeadlineExceeded) || timed && !time.Now().Before(deadline):
		return nil, slowBodyError{timeout}
	}
	return nil, badRequest("reading the request body: %v", err)
}

// guard is the shared state of the abuse limits.
type guard struct {
	lim      Limits
	failures *failureLimiter
	pending  *pending
	slots    *concurrency
	streams  chan struct{} // the event streams' places (streams.go)
	log      *slog.Logger
}

// admissionKey is the context key of a request's admission.
type admissionKey struct{}

// admission is one request's passage through the limits: its pending place, then its slot.
type admission struct {
	*guard
	key      netip.Addr
	attrs    []any
	mu       sync.Mutex
	pendingH bool // holds a pending place (released by done or passed)
	slotH    bool
}

// admit tells the limits how r's credential check came out: nil lets r take a slot (or
// returns busyError), an authentication failure counts against r's address and comes back
// as authErr, or rateLimitedError once the address has failed too often. Other errors pass
// through. A request outside protect is let through as is.
func admit(r *http.Request, authErr error) error {
	a, _ := r.Context().Value(admissionKey{}).(*admission)
	switch {
	case a == nil:
		return authErr
	case authErr == nil:
		return a.passed(r.Context())
	case statusFor(authErr) == http.StatusUnauthorized:
		return a.failed(authErr)
	}
	return authErr
}

// passed moves an authenticated request from its pending place to a slot.
func (a *admission) passed(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.slotH {
		return nil
	}
	if a.pendingH {
		a.pending.release(a.key)
		a.pendingH = false
	}
	if !a.slots.acquire(ctx) {
		return busyError{}
	}
	a.slotH = true
	return nil
}

// failed counts a failed authentication against the address.
func (a *admission) failed(authErr error) error {
	now := a.lim.Now()
	if wait := a.failures.wait(a.key, now); wait > 0 {
		return rateLimitedError{wait}
	}
	if wait := ceilSecond(a.failures.fail(a.key, now)); wait > 0 {
		a.log.Warn("client rate-limited after repeated failed authentications", append(a.attrs, "retry_after", wait)...)
	}
	return authErr
}

// done releases whatever the request still holds.
func (a *admission) done() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pendingH {
		a.pending.release(a.key)
	}
	if a.slotH {
		a.slots.release()
	}
	a.pendingH, a.slotH = false, false
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

// pending counts the requests not yet authenticated, per address and in total. Registries
// deliver many customers' webhooks from a few addresses, and a burst of genuine deliveries
// must be answered, not refused (Docker Hub never retries), so the per-address bound holds
// only once half the places are taken: until then one address may take any free place, and
// it can never take more than half while others want theirs. Past its bound, a request waits
// for one of its address's places, up to wait, and a released place goes to the address's
// longest waiter. Bounds stay hard: at most waitersPerPlace×perClient wait per address, and
// past the total bound refusal is immediate.
type pending struct {
	mu        sync.Mutex
	perClient int
	total     int
	wait      time.Duration
	count     int
	clients   map[netip.Addr]*clientPending
}

// waitersPerPlace bounds how many requests of one address may wait per pending place it has.
const waitersPerPlace = 4

// clientPending is one address's share: the places it holds, and its waiters in arrival order,
// each woken by the place handed to it.
type clientPending struct {
	held    int
	waiters []chan struct{}
}

func newPending(perClient, total int, wait time.Duration) *pending {
	return &pending{perClient: perClient, total: total, wait: wait, clients: map[netip.Addr]*clientPending{}}
}

// acquire takes a place for key, waiting for one of key's own when it holds its bound;
// perClient tells which bound refused it.
func (p *pending) acquire(ctx context.Context, key netip.Addr) (ok, perClient bool) {
	p.mu.Lock()
	c := p.clients[key]
	if c == nil {
		c = &clientPending{}
		p.clients[key] = c
	}
	switch {
	case p.count >= p.total:
		p.forget(key, c)
		p.mu.Unlock()
		return false, false
	case c.held < p.perClient || p.count < p.total/2:
		c.held++
		p.count++
		p.mu.Unlock()
		return true, false
	case len(c.waiters) >= waitersPerPlace*p.perClient:
		p.mu.Unlock()
		return false, true
	}
	handed := make(chan struct{}, 1)
	c.waiters = append(c.waiters, handed)
	p.mu.Unlock()

	timer := time.NewTimer(p.wait)
	defer timer.Stop()
	select {
	case <-handed:
		return true, false
	case <-timer.C:
	case <-ctx.Done():
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-handed: // handed over while giving up: keep it
		return true, false
	default:
	}
	c.waiters = slices.DeleteFunc(c.waiters, func(w chan struct{}) bool { return w == handed })
	return false, true
}

// release gives key's place to its longest waiter, or frees it.
func (p *pending) release(key netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.clients[key]
	if c == nil {
		return
	}
	if len(c.waiters) > 0 {
		c.waiters[0] <- struct{}{}
		c.waiters = c.waiters[1:]
		return
	}
	p.count--
	c.held--
	p.forget(key, c)
}

// forget drops key's entry once it holds and awaits nothing, so the table stays as small as
// what is pending.
func (p *pending) forget(key netip.Addr, c *clientPending) {
	if c.held <= 0 && len(c.waiters) == 0 {
		delete(p.clients, key)
	}
}

// concurrency bounds the authenticated requests in flight.
type concurrency struct {
	slots      chan struct{} // a token per request being handled
	wait       time.Duration
	maxWaiting int64
	waiting    atomic.Int64
}

func newConcurrency(total int, wait time.Duration) *concurrency {
	return &concurrency{slots: make(chan struct{}, total), wait: wait, maxWaiting: 4 * int64(total)}
}

// acquire takes a slot, waiting for one up to c.wait when all are taken.
func (c *concurrency) acquire(ctx context.Context) bool {
	select {
	case c.slots <- struct{}{}:
		return true
	default:
	}
	if c.waiting.Add(1) > c.maxWaiting {
		c.waiting.Add(-1)
		return false
	}
	defer c.waiting.Add(-1)
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	select {
	case c.slots <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

func (c *concurrency) release() { <-c.slots }
