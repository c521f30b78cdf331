package handler

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/deployertest"
)

func TestClientAddr(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1, ::ffff:198.51.100.0/120")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, peer string
		header     http.Header
		want       string
		forwarded  bool
		proxyHdr   string // TRUSTED_PROXY_HEADER; X-Forwarded-For when ""
	}{
		{"direct", "203.0.113.5:4000", nil, "203.0.113.5", false, ""},
		{"spoofed from untrusted peer", "203.0.113.5:4000", http.Header{"X-Forwarded-For": {"198.51.100.9"}}, "203.0.113.5", true, ""},
		{"spoofed Forwarded from untrusted peer", "203.0.113.5:4000", http.Header{"Forwarded": {"for=198.51.100.9"}}, "203.0.113.5", true, "Forwarded"},
		{"trusted proxy", "10.1.2.3:4000", http.Header{"X-Forwarded-For": {"203.0.113.7"}}, "203.0.113.7", true, ""},
		{"client-written entries left of the proxy's are ignored", "10.1.2.3:4000", http.Header{"X-Forwarded-For": {"1.2.3.4, 203.0.113.7"}}, "203.0.113.7", true, ""},
		{"two trusted proxies", "10.1.2.3:4000", http.Header{"X-Forwarded-For": {"203.0.113.7", "10.9.9.9"}}, "203.0.113.7", true, ""},
		{"single trusted address", "192.0.2.1:80", http.Header{"X-Forwarded-For": {"203.0.113.8"}}, "203.0.113.8", true, ""},
		{"Forwarded is not read unless named", "10.1.2.3:4000", http.Header{"Forwarded": {`for="[2001:db8::1]:4711";proto=https`}, "X-Forwarded-For": {"1.2.3.4"}}, "1.2.3.4", true, ""},
		{"Forwarded alone, not named", "10.1.2.3:4000", http.Header{"Forwarded": {"for=1.2.3.4"}}, "10.1.2.3", false, ""},
		{"Forwarded when named", "10.1.2.3:4000", http.Header{"Forwarded": {`for="[2001:db8::1]:4711";proto=https`}, "X-Forwarded-For": {"1.2.3.4"}}, "2001:db8::1", true, "Forwarded"},
		{"X-Real-IP when named", "10.1.2.3:4000", http.Header{"X-Real-Ip": {"203.0.113.4"}, "X-Forwarded-For": {"1.2.3.4"}}, "203.0.113.4", true, "X-Real-IP"},
		{"garbage hop stops at the proxy", "10.1.2.3:4000", http.Header{"X-Forwarded-For": {"203.0.113.7, unknown"}}, "10.1.2.3", true, ""},
		{"mapped peer", "[::ffff:198.51.100.20]:80", http.Header{"X-Forwarded-For": {"203.0.113.9"}}, "203.0.113.9", true, ""},
		{"every hop trusted", "10.1.2.3:4000", http.Header{"X-Forwarded-For": {"10.4.4.4"}}, "10.4.4.4", true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
			r.RemoteAddr = tc.peer
			r.Header = tc.header
			if r.Header == nil {
				r.Header = http.Header{}
			}
			got, fwd := proxies.clientAddr(r, cmp.Or(tc.proxyHdr, "X-Forwarded-For"))
			if got.String() != tc.want || fwd != tc.forwarded {
				t.Errorf("clientAddr = %s, %v; want %s, %v", got, fwd, tc.want, tc.forwarded)
			}
		})
	}
	for _, bad := range []string{"10.0.0.0/33", "example.com", "10.0.0.0/8,nope"} {
		if _, err := ParseTrustedProxies(bad); err == nil {
			t.Errorf("ParseTrustedProxies(%q) accepted it", bad)
		}
	}
}

func TestFailureLimiterBucket(t *testing.T) {
	l := &failureLimiter{burst: 3, refill: 10 * time.Second, max: 2, buckets: map[netip.Addr]*bucket{}}
	a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")
	now := time.Unix(0, 0)
	for i := range 2 {
		if w := l.fail(a, now); w != 0 {
			t.Fatalf("failure %d blocked for %s; the burst is 3", i+1, w)
		}
	}
	if w := l.fail(a, now); w != 10*time.Second {
		t.Fatalf("third failure: wait %s, want 10s", w)
	}
	if w := l.wait(a, now.Add(4*time.Second)); w != 6*time.Second {
		t.Errorf("after 4s: wait %s, want 6s", w)
	}
	if w := l.wait(a, now.Add(10*time.Second)); w != 0 {
		t.Errorf("after a full refill period: wait %s, want 0", w)
	}
	if w := l.wait(b, now); w != 0 {
		t.Errorf("an address that never failed waits %s", w)
	}
	// The table holds two addresses; a third evicts, a refilled one first.
	l.fail(b, now)
	l.fail(c, now.Add(time.Hour))
	if len(l.buckets) > 2 {
		t.Errorf("%d buckets kept, max 2", len(l.buckets))
	}
	if _, ok := l.buckets[c]; !ok {
		t.Error("the newest failure was not recorded")
	}
	if got := limiterKey(netip.MustParseAddr("2001:db8:1:2:3:4:5:6")); got.String() != "2001:db8:1:2::" {
		t.Errorf("IPv6 key %s, want its /64", got)
	}
}

// blockingDeployer holds every deploy until release is closed.
type blockingDeployer struct {
	entered chan struct{}
	release chan struct{}
}

func (d *blockingDeployer) Deploy(ctx context.Context, req deployer.Request) (deployer.Ticket, error) {
	d.entered <- struct{}{}
	<-d.release
	return deployer.Ticket{ID: "t", Image: req.Repository + ":" + req.Tag, Services: []string{"p/web"}}, nil
}

// clientFrom is an HTTP client whose connections leave from the loopback address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 16}}
}

// TestFloodIsLimitedValidSendersAreNot: a bounded flood of wrong secrets from one address
// runs out of its burst and gets 429s with Retry-After, while valid webhooks from another
// address are all accepted during the flood; a forwarding header from an untrusted peer does
// not move the flood onto the valid sender's address; and a valid credential from the flooded
// address itself is still accepted (registries deliver every customer's webhooks from shared
// addresses, so someone else's wrong secret must not lock a sender out).
func TestFloodIsLimitedValidSendersAreNot(t *testing.T) {
	d := &recordingDeployer{}
	var logs deployertest.Log
	cfg := Config{DockerHub: Secrets{dockerHubURL}, Limits: Limits{AuthBurst: 5, AuthRefill: time.Hour}}
	srv := httptest.NewServer(NewServer(cfg, d, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	defer srv.Close()
	body := string(fixture(t, "dockerhub-push.json"))

	const flood, workers, valid = 400, 8, 20
	statuses := make(chan int, flood)
	var wg sync.WaitGroup
	attacker := clientFrom("127.0.0.2")
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range flood / workers {
				req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook?secret=guess-"+string(rune('a'+w)), strings.NewReader(body))
				req.Header.Set("X-Forwarded-For", "127.0.0.3") // spoofed: the valid sender's address
				resp, err := attacker.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				statuses <- resp.StatusCode
			}
		}()
	}
	sender := clientFrom("127.0.0.3")
	for i := range valid {
		// Distinct bodies, so none is a duplicate delivery.
		b := strings.Replace(body, `"pushed_at": `, `"pushed_at": 1`+strings.Repeat("0", i%5), 1)
		b = strings.Replace(b, `"tag": "1.4.2"`, `"tag": "1.4.`+string(rune('a'+i))+`"`, 1)
		resp, err := sender.Post(srv.URL+"/webhook?secret="+dockerHubURL, "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("valid webhook %d during the flood: %s %s", i, resp.Status, msg)
		}
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	t.Logf("flood answers: %v", count)
	// Failures racing in before the first is recorded can pass the burst, at most by the
	// requests one address may have in flight.
	if count[http.StatusUnauthorized] < 5 || count[http.StatusUnauthorized] > 5+workers {
		t.Errorf("%d answers 401, want the burst of 5 (plus at most %d in flight)", count[http.StatusUnauthorized], workers)
	}
	if count[http.StatusUnauthorized]+count[http.StatusTooManyRequests] != flood {
		t.Errorf("flood answers %v, want only 401 and 429", count)
	}
	if n := len(d.requests()); n != valid {
		t.Errorf("%d deploys requested, want %d", n, valid)
	}
	// A 429 is logged by the route once the body was read, or by the limits before it when the
	// request carried no credential that could pass (TestLimitedAddressIsRefusedUnread).
	limited := refusals(logs.String(), webhookRefused, http.StatusTooManyRequests) + refusals(logs.String(), limitsRefused, http.StatusTooManyRequests)
	unauthorized := refusals(logs.String(), webhookRefused, http.StatusUnauthorized)
	if limited != count[http.StatusTooManyRequests] || unauthorized != count[http.StatusUnauthorized] {
		t.Errorf("refusals logged (%d rate-limited, %d unauthorized) disagree with the answers %v", limited, unauthorized, count)
	}
	// The limiter and the log use the real peer, never the spoofed header.
	out := logs.String()
	if !strings.Contains(out, `rate-limited after repeated failed authentications" remote=127.0.0.2:`) ||
		!strings.Contains(out, "limiter_key=127.0.0.2") || strings.Contains(out, "limiter_key=127.0.0.3") {
		t.Errorf("log does not name the real address as the limited one:\n%.2000s", out)
	}
	if !strings.Contains(out, "outside TRUSTED_PROXIES") {
		t.Error("no warning about ignored forwarding headers")
	}
	// A valid credential from the limited address is checked first and accepted.
	resp, err := attacker.Post(srv.URL+"/webhook?secret="+dockerHubURL, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Errorf("valid credential from the flooded address: %s, want 202", resp.Status)
	}
}

// TestTrustedProxyForwardingIsBelieved: behind a trusted proxy, the limit applies to the
// client the proxy names, so one abuser does not lock out the proxy's other clients.
func TestTrustedProxyForwardingIsBelieved(t *testing.T) {
	proxies, _ := ParseTrustedProxies("127.0.0.5")
	d := &recordingDeployer{}
	var logs deployertest.Log
	cfg := Config{DockerHub: Secrets{dockerHubURL}, Limits: Limits{AuthBurst: 1, AuthRefill: time.Hour, TrustedProxies: proxies}}
	srv := httptest.NewServer(NewServer(cfg, d, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	body := string(fixture(t, "dockerhub-push.json"))
	proxy := clientFrom("127.0.0.5")
	post := func(client, secret string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/webhook?secret="+secret, strings.NewReader(body))
		req.Header.Set("X-Forwarded-For", client)
		resp, err := proxy.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("203.0.113.66", "wrong"); s != http.StatusUnauthorized {
		t.Fatalf("first failure: %d", s)
	}
	if s := post("203.0.113.66", "wrong"); s != http.StatusTooManyRequests {
		t.Errorf("second failure from the same client: %d, want 429", s)
	}
	if s := post("203.0.113.77", dockerHubURL); s != http.StatusAccepted {
		t.Errorf("another client through the same proxy: %d, want 202", s)
	}
	if !strings.Contains(logs.String(), "remote=203.0.113.66") {
		t.Errorf("log does not name the forwarded client:\n%s", logs.String())
	}
}

// TestBurstWaitsForASlot: a burst of valid webhooks five times MaxConcurrent (the slots plus
// the most that may wait) is answered 202, each request waiting for a slot instead of being refused.
func TestBurstWaitsForASlot(t *testing.T) {
	d := &recordingDeployer{}
	var logs deployertest.Log
	cfg := Config{DockerHub: Secrets{dockerHubURL}, Limits: Limits{MaxConcurrent: 4}}
	srv := httptest.NewServer(NewServer(cfg, d, slog.New(slog.NewTextHandler(&logs, nil))))
	defer srv.Close()
	body := string(fixture(t, "dockerhub-push.json"))
	const burst = 20
	statuses := make([]int, burst)
	var wg sync.WaitGroup
	c := clientFrom("127.0.0.2")
	for i := range burst {
		wg.Go(func() {
			b := strings.Replace(body, `"pushed_at": 1795183407`, `"pushed_at": `+strconv.Itoa(1795183407+i), 1)
			resp, err := c.Post(srv.URL+"/webhook?secret="+dockerHubURL, "application/json", strings.NewReader(b))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	for i, code := range statuses {
		if code != http.StatusAccepted {
			t.Errorf("request %d of the burst: %d, want 202", i, code)
		}
	}
	if n := refusals(logs.String(), limitsRefused, http.StatusServiceUnavailable); n != 0 {
		t.Errorf("%d busy refusals, want 0:\n%s", n, logs.String())
	}
}

// TestConcurrencyQueue: past the slots a request waits; past 4×slots waiting, or once its
// wait or its request ends, it is refused; a released slot goes to a waiter.
func TestConcurrencyQueue(t *testing.T) {
	c := newConcurrency(2, time.Hour)
	ctx := context.Background()
	for range 2 {
		if !c.acquire(ctx) {
			t.Fatal("a free slot was refused")
		}
	}
	got := make(chan bool, 8)
	for range 8 {
		go func() { got <- c.acquire(ctx) }()
	}
	for end := time.Now().Add(30 * time.Second); c.waiting.Load() < 8; runtime.Gosched() {
		if time.Now().After(end) {
			t.Fatalf("%d of 8 requests are waiting after 30 s", c.waiting.Load())
		}
	}
	if c.acquire(ctx) {
		t.Error("a ninth waiter was let in; want refused at once")
	}
	for range 8 { // let the waiters in one by one
		c.release()
		if ok := <-got; !ok {
			t.Error("a waiter was refused while slots came free")
		}
	}
	c.release()
	c.release()
	if len(c.slots) != 0 {
		t.Errorf("after every release: %d slots still held", len(c.slots))
	}

	short := newConcurrency(1, time.Millisecond)
	if !short.acquire(ctx) {
		t.Fatal("a free slot was refused")
	}
	if short.acquire(ctx) {
		t.Error("a waiter got a slot nobody released")
	}
	short.wait = time.Hour
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if short.acquire(gone) {
		t.Error("a waiter whose request ended got a slot")
	}

	p := newPending(2, 3, time.Millisecond)
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	for _, step := range []struct {
		key           netip.Addr
		ok, perClient bool
	}{{a, true, false}, {a, true, false}, {a, false, true}, {b, true, false}, {b, false, false}} {
		if ok, per := p.acquire(ctx, step.key); ok != step.ok || per != step.perClient {
			t.Errorf("pending.acquire(%s) = %v, %v; want %v, %v", step.key, ok, per, step.ok, step.perClient)
		}
	}
	p.release(a)
	if ok, _ := p.acquire(ctx, b); !ok {
		t.Error("a released pending place was not free again")
	}
}

// TestPendingWaitsForItsAddress: while half the pending places are free an address may take
// any of them; past that, a request beyond its address's bound waits for one of that
// address's places and is handed it when one is released; at most 4 per place wait, the rest
// are refused at once; a waiter whose time or request ends is refused; nothing is left behind.
func TestPendingWaitsForItsAddress(t *testing.T) {
	ctx := context.Background()
	a := netip.MustParseAddr("192.0.2.1")
	// One address may take any free place while half the places are free.
	free := newPending(1, 10, time.Millisecond)
	for i := range 5 {
		if ok, _ := free.acquire(ctx, a); !ok {
			t.Fatalf("place %d of 10, the first %d taken by the same address: refused", i+1, i)
		}
	}
	if ok, per := free.acquire(ctx, a); ok || !per {
		t.Errorf("with half the places taken by one address, its next: %v, %v; want refused for its address", ok, per)
	}
	if ok, _ := free.acquire(ctx, netip.MustParseAddr("192.0.2.2")); !ok {
		t.Error("another address was refused a free place")
	}

	// Half of 2 places taken: the address is held to its 1.
	p := newPending(1, 2, time.Hour)
	if ok, _ := p.acquire(ctx, a); !ok {
		t.Fatal("a free place was refused")
	}
	got := make(chan bool, waitersPerPlace)
	for range waitersPerPlace {
		go func() {
			ok, _ := p.acquire(ctx, a)
			got <- ok
		}()
	}
	waiting := func() int {
		p.mu.Lock()
		defer p.mu.Unlock()
		if c := p.clients[a]; c != nil {
			return len(c.waiters)
		}
		return 0
	}
	for i := 0; waiting() < waitersPerPlace; i++ {
		if i == 10000 {
			t.Fatalf("%d of %d requests waiting", waiting(), waitersPerPlace)
		}
		time.Sleep(time.Millisecond)
	}
	if ok, per := p.acquire(ctx, a); ok || !per {
		t.Errorf("a request past the waiters' bound: %v, %v; want refused at once for its address", ok, per)
	}
	for i := range waitersPerPlace {
		p.release(a)
		if !<-got {
			t.Errorf("waiter %d was refused after a place was released", i+1)
		}
	}
	p.release(a)
	if len(p.clients) != 0 || p.count != 0 {
		t.Errorf("after every release: %d addresses, %d places still counted", len(p.clients), p.count)
	}

	short := newPending(1, 2, time.Millisecond)
	short.acquire(ctx, a)
	if ok, per := short.acquire(ctx, a); ok || !per {
		t.Errorf("a waiter nobody released a place for: %v, %v; want refused", ok, per)
	}
	short.wait = time.Hour
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if ok, _ := short.acquire(gone, a); ok {
		t.Error("a waiter whose request ended got a place")
	}
	short.release(a)
	if len(short.clients) != 0 {
		t.Errorf("%d addresses left in the table", len(short.clients))
	}
}

// TestBurstFromOneAddressIsAnsweredNotRefused: genuine deliveries from one address, more at
// once than PendingPerClient (a registry delivers many customers' webhooks from one address),
// are all accepted, whether berth has free places (MaxPending 100) or half its places are
// taken by slow bodies from elsewhere, when the ones past the bound wait for a place.
func TestBurstFromOneAddressIsAnsweredNotRefused(t *testing.T) {
	for _, taken := range []int{0, 10} {
		t.Run(fmt.Sprintf("%d of 20 places taken", taken), func(t *testing.T) {
			d := &recordingDeployer{}
			cfg := Config{DockerHub: Secrets{dockerHubURL}, Limits: Limits{PendingPerClient: 2, MaxPending: 20}}
			srv := httptest.NewServer(NewServer(cfg, d, slog.New(slog.DiscardHandler)))
			defer srv.Close()
			for i := range taken {
				stop := slowBody(t, srv.URL, "127.0.3."+strconv.Itoa(i+1))
				defer stop(time.Millisecond)
			}
			sendBurst(t, srv, d)
		})
	}
}

// sendBurst sends 8 genuine deliveries from 127.0.0.5 at once and wants every one accepted.
func sendBurst(t *testing.T, srv *httptest.Server, d *recordingDeployer) {
	body := string(fixture(t, "dockerhub-push.json"))
	const burst = 8
	// Each delivery sends its headers and half its body, and the rest only once every one has
	// started, so that they overlap: until then each holds, or waits for, a pending place of
	// 127.0.0.5. (The pause only makes the overlap likely; nothing here is timed.)
	type started struct {
		c    net.Conn
		rest string
	}
	var all []started
	for i := range burst {
		b := strings.Replace(body, `"tag": "1.4.2"`, `"tag": "1.4.`+strconv.Itoa(200+i)+`"`, 1)
		c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}).Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		fmt.Fprintf(c, "POST /webhook?secret=%s HTTP/1.1\r\nHost: berth\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
			dockerHubURL, len(b), b[:len(b)/2])
		all = append(all, started{c, b[len(b)/2:]})
	}
	time.Sleep(100 * time.Millisecond)
	for _, s := range all {
		if _, err := io.WriteString(s.c, s.rest); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range all {
		resp, err := http.ReadResponse(bufio.NewReader(s.c), nil)
		if err != nil {
			t.Fatal(err)
		}
		msg, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Errorf("delivery %d of the burst: %s %s", i+1, resp.Status, msg)
		}
	}
	if n := len(d.requests()); n != burst {
		t.Errorf("%d deploys requested, want %d", n, burst)
	}
}

// refusals counts the log lines of refusals named event that answered status.
func refusals(logs, event string, status int) int {
	n := 0
	for line := range strings.Lines(logs) {
		if strings.Contains(line, "msg=\""+event+"\"") && strings.Contains(line, " status="+strconv.Itoa(status)+" ") {
			n++
		}
	}
	return n
}

// readTracker is a request body that remembers whether anything read it.
type readTracker struct {
	r    io.Reader
	read bool
}

func (b *readTracker) Read(p []byte) (int, error) { b.read = true; return b.r.Read(p) }

// TestLimitedAddressIsRefusedUnread: once an address is rate-limited, a webhook from it that no
// credential check could pass is answered 429 before its body is read (a flood then costs
// berth almost nothing), while every genuine delivery from that address, of every sender kind,
// is still read, checked and accepted, and a signed one with a bad signature is read and then
// refused as before.
func TestLimitedAddressIsRefusedUnread(t *testing.T) {
	d := &recordingDeployer{}
	var logs deployertest.Log
	cfg := fullConfig()
	cfg.Limits = Limits{AuthBurst: 2, AuthRefill: time.Hour}
	h := NewServer(cfg, d, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	post := func(query string, header http.Header, body []byte) (int, *readTracker, *httptest.ResponseRecorder) {
		t.Helper()
		tr := &readTracker{r: strings.NewReader(string(body))}
		r := httptest.NewRequest(http.MethodPost, "/webhook"+query, tr)
		r.RemoteAddr = "192.0.2.9:4000"
		for k, vs := range header {
			r.Header[k] = vs
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, tr, w
	}
	dhBody := fixture(t, "dockerhub-push.json")
	for i := range 2 {
		if code, tr, _ := post("?secret=guess", nil, dhBody); code != http.StatusUnauthorized || !tr.read {
			t.Fatalf("failure %d: %d (body read %v), want 401 after reading it", i+1, code, tr.read)
		}
	}

	distH := fixtureHeaders(t, "distribution-push.headers.txt")
	harborH := fixtureHeaders(t, "harbor-push.headers.txt")
	ghH := fixtureHeaders(t, "ghcr-package-published.headers.txt")
	// A named request: what post sends.
	type named struct {
		name   string
		query  string
		header http.Header
		body   []byte
	}
	hopeless := []named{
		{"wrong URL secret", "?secret=guess", nil, dhBody},
		{"no credential at all", "", nil, dhBody},
		{"the Quay secret's neighbour", "?secret=" + quayURL + "x", nil, fixture(t, "quay-push.json")},
		{"wrong bearer token", "", with(distH, "Authorization", "Bearer nope"), fixture(t, "distribution-push.json")},
		{"wrong Harbor header", "", with(harborH, "Authorization", "Basic nope"), fixture(t, "harbor-push.json")},
		{"not even JSON", "?secret=guess", nil, []byte("<html>")},
	}
	for _, tc := range hopeless {
		code, tr, w := post(tc.query, tc.header, tc.body)
		if code != http.StatusTooManyRequests || tr.read || w.Header().Get("Retry-After") == "" {
			t.Errorf("%s from the limited address: %d, body read %v, Retry-After %q; want 429 unread with Retry-After",
				tc.name, code, tr.read, w.Header().Get("Retry-After"))
		}
	}
	if n := refusals(logs.String(), limitsRefused, http.StatusTooManyRequests); n != len(hopeless) {
		t.Errorf("%d early refusals logged, want %d", n, len(hopeless))
	}

	genuine := []named{
		{"dockerhub", "?secret=" + dockerHubURL, nil, dhBody},
		{"quay", "?secret=" + quayURL, fixtureHeaders(t, "quay-push.headers.txt"), fixture(t, "quay-push.json")},
		{"distribution", "", distH, fixture(t, "distribution-push.json")},
		{"harbor", "", harborH, fixture(t, "harbor-push.json")},
		{"ghcr", "", ghH, fixture(t, "ghcr-package-published.json")},
		{"gitea", "", fixtureHeaders(t, "gitea-package-created.headers.txt"), fixture(t, "gitea-package-created.json")},
		{"standard webhooks", "", fixtureHeaders(t, "standard-webhooks.headers.txt"), fixture(t, "standard-webhooks.json")},
	}
	for _, tc := range genuine {
		if code, tr, w := post(tc.query, tc.header, tc.body); code != http.StatusAccepted || !tr.read {
			t.Errorf("genuine %s from the limited address: %d %s (body read %v), want 202", tc.name, code, w.Body, tr.read)
		}
	}

	// A signed kind can only be judged with its body: read, then refused by the limit as before.
	bad := with(ghH, "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64))
	if code, tr, _ := post("", bad, fixture(t, "ghcr-package-published.json")); code != http.StatusTooManyRequests || !tr.read {
		t.Errorf("bad signature from the limited address: %d (body read %v), want 429 after reading it", code, tr.read)
	}
	// Another address is not limited.
	r := httptest.NewRequest(http.MethodPost, "/webhook?secret=guess", strings.NewReader(string(dhBody)))
	r.RemoteAddr = "192.0.2.10:4000"
	w := httptest.NewRecorder()
	if h.ServeHTTP(w, r); w.Code != http.StatusUnauthorized {
		t.Errorf("wrong secret from another address: %d, want 401", w.Code)
	}
}
