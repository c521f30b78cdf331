package watch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRegistry is a registry on loopback that answers manifest HEADs with answer: the faults
// (429, 5xx) a real registry cannot be made to produce on demand.
type fakeRegistry struct {
	mu       sync.Mutex
	heads    int
	accepts  []string
	answer   func(w http.ResponseWriter)
	inflight int
	maxIn    int
	hold     chan struct{} // when set, a HEAD waits for it to close
}

func newFakeRegistry(t *testing.T, answer func(w http.ResponseWriter)) (*fakeRegistry, string) {
	f := &fakeRegistry{answer: answer}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return // no auth needed
		}
		f.mu.Lock()
		f.heads++
		f.accepts = append(f.accepts, r.Header.Get("Accept"))
		f.inflight++
		f.maxIn = max(f.maxIn, f.inflight)
		hold := f.hold
		f.mu.Unlock()
		if r.Method != http.MethodHead {
			t.Errorf("%s %s: berth only ever HEADs a manifest", r.Method, r.URL.Path)
		}
		if hold != nil {
			<-hold
		}
		f.answer(w)
		f.mu.Lock()
		f.inflight--
		f.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return f, strings.TrimPrefix(srv.URL, "http://")
}

func (f *fakeRegistry) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.heads
}

const indexDigest = "sha256:4b1ba3e5a9d6a9a5b1f1d4f0b3c3e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90"

func answerIndex(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Docker-Content-Digest", indexDigest)
	w.Header().Set("Content-Length", "512")
}

// TestHead: one HEAD accepting an index, a manifest list and both manifest kinds answers the
// index digest; a 429 or 503 is a *Throttled carrying Retry-After, after exactly one request.
func TestHead(t *testing.T) {
	cases := []struct {
		name   string
		answer func(w http.ResponseWriter)
		digest string
		status int
		after  time.Duration
	}{
		{name: "index", answer: answerIndex, digest: indexDigest},
		{name: "429 retry after seconds", answer: func(w http.ResponseWriter) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
		}, status: 429, after: 2 * time.Minute},
		{name: "503 without retry after", answer: func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) }, status: 503},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, host := newFakeRegistry(t, tc.answer)
			got, err := Head(context.Background(), host+"/acme/app:1", nil, nil)
			var th *Throttled
			switch {
			case tc.status == 0 && (err != nil || got != tc.digest):
				t.Fatalf("Head = %q, %v; want %s", got, err, tc.digest)
			case tc.status != 0 && (!errors.As(err, &th) || th.Status != tc.status || th.RetryAfter != tc.after):
				t.Fatalf("Head error %#v, want Throttled %d after %s", err, tc.status, tc.after)
			}
			if f.count() != 1 {
				t.Errorf("%d manifest requests, want exactly 1 (no retries: the schedule backs off)", f.count())
			}
			for _, mt := range []string{"application/vnd.oci.image.index.v1+json", "application/vnd.docker.distribution.manifest.list.v2+json",
				"application/vnd.oci.image.manifest.v1+json", "application/vnd.docker.distribution.manifest.v2+json"} {
				if !strings.Contains(f.accepts[0], mt) {
					t.Errorf("Accept %q lacks %s", f.accepts[0], mt)
				}
			}
		})
	}
}

// TestThrottledRegistryIsNotHammered: a registry answering 429 with Retry-After: 600 to a
// service checked every minute gets one request per Retry-After at most over two hours of a
// controlled clock, and the gaps between requests grow as the backoff doubles past it.
func TestThrottledRegistryIsNotHammered(t *testing.T) {
	f, host := newFakeRegistry(t, func(w http.ResponseWriter) {
		w.Header().Set("Retry-After", "600")
		w.WriteHeader(http.StatusTooManyRequests)
	})
	clock := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	r := NewRunner(NewSchedule(nil), 2, now)
	var at []time.Time
	check := func(ctx context.Context, key string) error {
		at = append(at, now())
		_, err := Head(ctx, host+"/acme/app:1", nil, nil)
		return err
	}
	for ; clock.Before(time.Date(2026, 1, 1, 2, 0, 0, 0, time.UTC)); clock = clock.Add(10 * time.Second) {
		r.Tick(context.Background(), map[string]time.Duration{"p/app": time.Minute}, check)
		r.Wait()
	}
	if n := f.count(); n < 2 || n > 1+120/10 {
		t.Fatalf("%d requests in 2h with Retry-After 10m, want between 2 and 13", n)
	}
	for i := 1; i < len(at); i++ {
		if gap := at[i].Sub(at[i-1]); gap < 10*time.Minute {
			t.Errorf("request %d came %s after the one before, sooner than Retry-After", i, gap)
		}
	}
}
