package deployer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/state"
)

// silentRegistry listens on loopback, accepts every connection and never answers: a registry
// stuck mid-request. It returns its host:port.
func silentRegistry(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// TestStuckPullTimesOut: a pull from a registry that never answers ends after PullTimeout with
// an error naming it.
func TestStuckPullTimesOut(t *testing.T) {
	eng := deployertest.Engine(t)
	ref := silentRegistry(t) + "/acme/stuck:1"
	d := New(context.Background(), eng, Options{PullTimeout: time.Second})
	done := make(chan error, 1)
	go func() { done <- d.pull(context.Background(), ref) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "PULL_TIMEOUT") {
			t.Errorf("stuck pull ended with %v, want a PULL_TIMEOUT error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("a pull with a 1s timeout was still running after a minute")
	}
}

// TestStuckPullBlocksOnlyItsService: with one deploy slot, a service whose pull is stuck does
// not keep another service's deploy waiting; shutdown ends the stuck pull, and its push stays
// owed for the next start.
func TestStuckPullBlocksOnlyItsService(t *testing.T) {
	p := newRolloutProject(t, "", "")
	stuckRepo := silentRegistry(t) + "/acme/stuck"
	stuckDir := deployertest.WriteProject(t, p.name+"stuck", fmt.Sprintf("services:\n  app:\n    image: %s:1\n", stuckRepo))
	shutdown, stop := context.WithCancel(context.Background())
	defer stop()
	stateDir := t.TempDir()
	var mu sync.Mutex
	var recs []Record
	d := New(context.Background(), p.eng, Options{
		Projects: []compose.Spec{{Dir: p.dir}, {Dir: stuckDir}}, Owners: []string{"acme"}, Parallel: 1,
		HealthSettle: time.Second, StateDir: stateDir, RecordAccepted: true, Shutdown: shutdown,
		Logger:   slog.New(slog.NewTextHandler(testLog{t}, nil)),
		OnRecord: func(r Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() },
	})
	records := func() []Record { mu.Lock(); defer mu.Unlock(); return append([]Record(nil), recs...) }
	ctx := context.Background()
	if _, err := d.Deploy(ctx, Request{Source: "test", Repository: stuckRepo, Tag: "1"}); err != nil {
		t.Fatal(err)
	}
	deployertest.Eventually(t, "the stuck pull to start", 30*time.Second, func() bool { return d.QueueDepth() == 1 })
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2")
	if _, err := d.Deploy(ctx, Request{Source: "test", Repository: "acme/web", Tag: p.tag}); err != nil {
		t.Fatal(err)
	}
	deployertest.Eventually(t, "web's deploy to end beside the stuck pull", time.Minute, func() bool { return len(records()) == 1 })
	if r := records()[0]; r.Service != "web" || r.Outcome != OutcomeDeployed {
		t.Fatalf("first deploy to end: %s %s (%s), want web deployed", r.Service, r.Outcome, r.Error)
	}
	stop()
	deployertest.Eventually(t, "shutdown to end the stuck pull", 30*time.Second, func() bool { return len(records()) == 2 })
	if r := records()[1]; r.Service != "app" || r.Outcome != OutcomeFailed || !strings.Contains(r.Error, "canceled") {
		t.Errorf("stuck deploy ended %s %s (%s), want app failed by shutdown", r.Service, r.Outcome, r.Error)
	}
	d.Close()
	owed, err := state.New(stateDir).Accepted()
	if err != nil {
		t.Fatal(err)
	}
	if got := owed.Pending(); len(got) != 1 || !strings.HasSuffix(got[0].Service, "stuck/app") {
		t.Errorf("owed after shutdown: %v, want only the stuck service's push", got)
	}
}

// failingRegistry is a loopback proxy in front of the sandbox registry that answers 500 to the
// first failures manifest requests, then passes everything through: a registry failing now and
// then, which the real one cannot be made to do on demand. It returns its host:port.
func failingRegistry(t *testing.T, failures int) string {
	t.Helper()
	target, err := url.Parse("http://" + deployertest.Registry())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var left atomic.Int32
	left.Store(int32(failures))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") && left.Add(-1) >= 0 {
			http.Error(w, "registry having a bad moment", http.StatusInternalServerError)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestPullRetriesServerErrors: a registry answering 500 twice is pulled from on the third try; one
// answering 500 every time fails the pull with the registry's error.
func TestPullRetriesServerErrors(t *testing.T) {
	eng := deployertest.Engine(t)
	tag := deployertest.UniqueTag("flaky")
	deployertest.PushHTTPImage(t, eng, "acme/flaky", tag, "version 1")
	d := New(context.Background(), eng, Options{})

	if err := d.pull(context.Background(), failingRegistry(t, 2)+"/acme/flaky:"+tag); err != nil {
		t.Errorf("pull through a registry failing twice: %v", err)
	}
	err := d.pull(context.Background(), failingRegistry(t, 1000)+"/acme/flaky:"+tag)
	if err == nil || !registryServerError(err) {
		t.Errorf("pull through a registry that always fails ended with %v, want its server error", err)
	}
}

// TestRegistryServerError: the engines' words for a registry's 5xx, and errors that are not one.
func TestRegistryServerError(t *testing.T) {
	for msg, want := range map[string]bool{
		"pull x: received unexpected HTTP status: 500 Internal Server Error":                                                      true,
		"pull x: unexpected status from HEAD request to http://127.0.0.1:5600/v2/acme/web/manifests/1: 500 Internal Server Error": true,
		"pull x: error parsing HTTP 502 response body: invalid character '<'":                                                     true,
		"pull x: unexpected status from GET request to https://r.example/v2/: 503 Service Unavailable":                            true,
		"pull x: manifest for acme/web:9 not found: manifest unknown":                                                             false,
		"pull x: unauthorized: authentication required":                                                                           false,
		"pull x: toomanyrequests: You have reached your pull rate limit":                                                          false,
		"pull 127.0.0.1:500/acme/web:1: dial tcp 127.0.0.1:500: connect: connection refused":                                      false,
	} {
		if got := registryServerError(errors.New(msg)); got != want {
			t.Errorf("registryServerError(%q) = %v, want %v", msg, got, want)
		}
	}
}
