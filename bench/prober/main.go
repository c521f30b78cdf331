// Command prober runs inside a container on the benchmarked compose project's network and
// requests the service once a millisecond, so the harness can see downtime the way another
// service in the project would: every gap between answers and every failed request.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// window is one measurement: it starts on POST /start and ends on POST /stop (or at its bound).
type window struct {
	mu        sync.Mutex
	requests  int
	failures  int
	lastOK    time.Time
	longest   time.Duration
	firstSeen map[string]int64 // body -> unix nanoseconds of the first answer carrying it
	errors    map[string]int   // failures by kind
	stop      chan struct{}
	done      chan struct{}
}

// result is what POST /stop (and GET /status) answers.
type result struct {
	Requests     int              `json:"requests"`
	Failures     int              `json:"failures"`
	LongestGapNS int64            `json:"longest_gap_ns"`
	FirstSeen    map[string]int64 `json:"first_seen"`
	Errors       map[string]int   `json:"errors"`
}

func main() {
	target := os.Getenv("TARGET")
	if target == "" {
		target = "http://web/"
	}
	listen := os.Getenv("LISTEN")
	if listen == "" {
		listen = ":8081"
	}
	var mu sync.Mutex
	var cur *window
	mux := http.NewServeMux()
	mux.HandleFunc("POST /start", func(w http.ResponseWriter, r *http.Request) {
		bound, err := time.ParseDuration(r.URL.Query().Get("max"))
		if err != nil || bound <= 0 || bound > 10*time.Minute {
			bound = 2 * time.Minute
		}
		mu.Lock()
		defer mu.Unlock()
		if cur != nil {
			close(cur.stop)
			<-cur.done
		}
		cur = &window{firstSeen: map[string]int64{}, errors: map[string]int{}, stop: make(chan struct{}), done: make(chan struct{}), lastOK: time.Now()}
		go cur.probe(target, bound)
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		c := cur
		mu.Unlock()
		if c == nil {
			http.Error(w, "no window", http.StatusConflict)
			return
		}
		_ = json.NewEncoder(w).Encode(c.result())
	})
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		c := cur
		cur = nil
		mu.Unlock()
		if c == nil {
			http.Error(w, "no window", http.StatusConflict)
			return
		}
		close(c.stop)
		<-c.done
		_ = json.NewEncoder(w).Encode(c.result())
	})
	fmt.Fprintln(os.Stderr, "prober listening on", listen, "target", target)
	if err := http.ListenAndServe(listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "prober:", err)
		os.Exit(1)
	}
}

// probe requests target every millisecond until stopped or bound passes. A fresh connection
// and a fresh name lookup per request, so a replaced container is seen at once; a 50 ms
// timeout (the service answers in about 1 ms), so a request sent to a container that
// vanished mid-way does not hide the moment the new one answers.
func (w *window) probe(target string, bound time.Duration) {
	defer close(w.done)
	dialer := &net.Dialer{Resolver: &net.Resolver{PreferGo: true, Dial: dialDNS}}
	c := &http.Client{Timeout: 50 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	end := time.Now().Add(bound)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(end) {
		select {
		case <-w.stop:
			return
		case <-tick.C:
		}
		body, err := get(c, target)
		now := time.Now()
		w.mu.Lock()
		w.requests++
		if err != nil {
			w.failures++
			w.errors[kind(err)]++
		} else {
			w.longest = max(w.longest, now.Sub(w.lastOK))
			w.lastOK = now
			if _, ok := w.firstSeen[body]; !ok {
				w.firstSeen[body] = now.UnixNano()
			}
		}
		w.mu.Unlock()
	}
}

func (w *window) result() result {
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := make(map[string]int64, len(w.firstSeen))
	for k, v := range w.firstSeen {
		seen[k] = v
	}
	errs := make(map[string]int, len(w.errors))
	for k, v := range w.errors {
		errs[k] = v
	}
	return result{Requests: w.requests, Failures: w.failures, LongestGapNS: w.longest.Nanoseconds(), FirstSeen: seen, Errors: errs}
}

// dialDNS connects to the engine's DNS server with every exchange cut to 20 ms. While no
// container answers to the service's name the engine forwards the query upstream, where the
// sandbox has nothing, and the query hangs for the resolver's 5 s; Go shares one lookup
// between all callers of a name, so one hung query would stall every probe behind it and
// hide the moment the new container is up.
func dialDNS(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		return shortUDP{u}, nil // still a PacketConn, which the resolver needs to frame UDP
	}
	return shortStream{c}, nil
}

// shortUDP and shortStream cap every deadline the resolver sets at 20 ms from now.
type shortUDP struct{ *net.UDPConn }

func (c shortUDP) SetDeadline(t time.Time) error { return c.UDPConn.SetDeadline(capped(t)) }

type shortStream struct{ net.Conn }

func (c shortStream) SetDeadline(t time.Time) error { return c.Conn.SetDeadline(capped(t)) }

func capped(t time.Time) time.Time {
	if limit := time.Now().Add(20 * time.Millisecond); t.IsZero() || t.After(limit) {
		return limit
	}
	return t
}

// kind names a failure coarsely, to tell name lookups, refusals and timeouts apart.
func kind(err error) string {
	var dns *net.DNSError
	var nerr net.Error
	switch {
	case errors.As(err, &dns):
		return "dns"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.As(err, &nerr) && nerr.Timeout():
		return "timeout"
	case strings.HasPrefix(err.Error(), "status"):
		return "status"
	}
	return "other"
}

func get(c *http.Client, url string) (string, error) {
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return strings.TrimSpace(string(b)), nil
}
