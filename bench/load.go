package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/handler"
)

// acceptedLoad is the 202 path: senders concurrent clients each posting perSender valid
// webhooks (distinct pushed_at, so none is a duplicate) for tag.
type acceptedLoad struct {
	latencies []time.Duration
	statuses  map[int]int
	errors    int
	took      time.Duration
}

func loadAccepted(ctx context.Context, url, payload, tag string, senders, perSender int) acceptedLoad {
	tr := &http.Transport{MaxIdleConns: senders, MaxIdleConnsPerHost: senders}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	body := strings.Replace(payload, `"tag": "1.4.2"`, `"tag": "`+tag+`"`, 1)
	var mu sync.Mutex
	res := acceptedLoad{statuses: map[int]int{}}
	var wg sync.WaitGroup
	start := make(chan struct{})
	var seq atomic.Int64
	base := time.Now().Unix()
	for range senders {
		wg.Go(func() {
			<-start
			for range perSender {
				b := strings.Replace(body, `"pushed_at": 1795183407`, fmt.Sprintf(`"pushed_at": %d`, base+seq.Add(1)), 1)
				t := time.Now()
				resp, err := c.Post(url+"/webhook?secret="+benchSecret, "application/json", strings.NewReader(b))
				d := time.Since(t)
				mu.Lock()
				if err != nil {
					res.errors++
				} else {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					res.statuses[resp.StatusCode]++
					if resp.StatusCode == http.StatusAccepted {
						res.latencies = append(res.latencies, d)
					}
				}
				mu.Unlock()
			}
		})
	}
	t := time.Now()
	close(start)
	wg.Wait()
	res.took = time.Since(t)
	slices.Sort(res.latencies)
	return res
}

// rejectedLoad is the bad-secret path: workers clients posting as fast as they can for d.
type rejectedLoad struct {
	total    int64
	statuses map[int]int64
	errors   int64
	took     time.Duration
}

func (r rejectedLoad) perSecond() float64 { return float64(r.total) / r.took.Seconds() }

func loadRejected(ctx context.Context, url, payload string, workers int, d time.Duration) rejectedLoad {
	tr := &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	var mu sync.Mutex
	res := rejectedLoad{statuses: map[int]int64{}}
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	t := time.Now()
	for range workers {
		wg.Go(func() {
			local := map[int]int64{}
			var n, errs int64
			for time.Now().Before(end) && ctx.Err() == nil {
				resp, err := c.Post(url+"/webhook?secret=wrong-secret-0123456789", "application/json", strings.NewReader(payload))
				if err != nil {
					errs++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local[resp.StatusCode]++
				n++
			}
			mu.Lock()
			res.total += n
			res.errors += errs
			for k, v := range local {
				res.statuses[k] += v
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	res.took = time.Since(t)
	return res
}

// inProcessRejected drives berth's real handler without a network for d on every core (the
// handler's own cost), writing a CPU profile to profilePath when it is set.
func inProcessRejected(payload string, d time.Duration, profilePath string) (float64, error) {
	cfg := handler.Config{DockerHub: handler.ParseSecrets(benchSecret)}
	srv := handler.NewServer(cfg, nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return 0, err
		}
		defer pprof.StopCPUProfile()
	}
	var total atomic.Int64
	var wg sync.WaitGroup
	end := time.Now().Add(d)
	t := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			var n int64
			for time.Now().Before(end) {
				for range 100 {
					req := httptest.NewRequest(http.MethodPost, "/webhook?secret=wrong-secret-0123456789", strings.NewReader(payload))
					req.RemoteAddr = "127.0.0.1:40000"
					req.Header.Set("Content-Type", "application/json")
					w := httptest.NewRecorder()
					srv.ServeHTTP(w, req)
					n++
				}
			}
			total.Add(n)
		})
	}
	wg.Wait()
	return float64(total.Load()) / time.Since(t).Seconds(), nil
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// inProcessAccepted drives berth's real handler and deployer (projects as berth would load
// them) with senders goroutines posting perSender valid webhooks each, without a network. The
// deployer's own context is cancelled, so the queued deploys end at once: this is the cost of
// answering 202, nothing else. It returns the sorted latencies and the process's CPU time
// (user+system, all threads) from the first request to the last deploy's end.
func inProcessAccepted(eng *client.Client, dirs []string, payload, tag string, senders, perSender int, profilePath string) ([]time.Duration, time.Duration, error) {
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	var specs []compose.Spec
	for _, d := range dirs {
		specs = append(specs, compose.Spec{Dir: d, Environ: os.Environ()})
	}
	discard := slog.New(slog.NewTextHandler(io.Discard, nil))
	d := deployer.New(gone, eng, deployer.Options{Projects: specs, Owners: []string{"acme"}, Logger: discard})
	d.Warm(context.Background()) // as berth serve does once listening
	srv := handler.NewServer(handler.Config{DockerHub: handler.ParseSecrets(benchSecret)}, d, discard)
	if profilePath != "" {
		f, err := os.Create(profilePath)
		if err != nil {
			return nil, 0, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, 0, err
		}
		defer pprof.StopCPUProfile()
	}
	body := strings.Replace(payload, `"tag": "1.4.2"`, `"tag": "`+tag+`"`, 1)
	var mu sync.Mutex
	var lat []time.Duration
	var seq atomic.Int64
	base := time.Now().Unix()
	var wg sync.WaitGroup
	var bad atomic.Int64
	var firstBad atomic.Value
	cpu0 := selfCPU()
	for range senders {
		wg.Go(func() {
			for range perSender {
				b := strings.Replace(body, `"pushed_at": 1795183407`, fmt.Sprintf(`"pushed_at": %d`, base+seq.Add(1)), 1)
				req := httptest.NewRequest(http.MethodPost, "/webhook?secret="+benchSecret, strings.NewReader(b))
				req.RemoteAddr = "127.0.0.1:40000"
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				t := time.Now()
				srv.ServeHTTP(w, req)
				dur := time.Since(t)
				if w.Code != http.StatusAccepted {
					bad.Add(1)
					firstBad.CompareAndSwap(nil, fmt.Sprintf("%d %s", w.Code, strings.TrimSpace(w.Body.String())))
					continue
				}
				mu.Lock()
				lat = append(lat, dur)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	_ = d.Wait(context.Background())
	cpu := selfCPU() - cpu0
	if n := bad.Load(); n > 0 {
		return nil, 0, fmt.Errorf("in-process: %d webhooks were not answered 202, the first: %v", n, firstBad.Load())
	}
	slices.Sort(lat)
	return lat, cpu, nil
}

// selfCPU is this process's CPU time so far, user and system, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
