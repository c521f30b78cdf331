package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The cost of watching (issue 22): N compose services run one image named by a counting
// reverse proxy in front of the sandbox registry, so every request about it — berth's checks,
// Watchtower's, and any pull the engine makes for either — passes the proxy, and nothing else
// on the shared registry is counted. berth and the Watchtower fork then watch the same N
// services, one after the other, each for the same window after a warm-up.

// counter is a loopback reverse proxy to the registry that counts requests by client and kind.
type counter struct {
	mu     sync.Mutex
	counts map[string]int
	srv    *http.Server
	addr   string
}

func startCounter(upstream string) (*counter, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	c := &counter{counts: map[string]int{}, addr: ln.Addr().String()}
	// The proxy keeps the client's Host header, so the registry's upload Locations name the proxy.
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: upstream})
	c.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.counts[whoAsked(r.UserAgent())+" "+r.Method+" "+kind(r.URL.Path)]++
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = c.srv.Serve(ln) }()
	return c, nil
}

// take returns the counts so far and starts again from zero.
func (c *counter) take() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.counts
	c.counts = map[string]int{}
	return m
}

func (c *counter) close() { _ = c.srv.Close() }

// whoAsked names who asked, by User-Agent: berth's checks use go-containerregistry's, the
// fork's its own, and a pull the engine makes says docker/.
func whoAsked(ua string) string {
	switch {
	case strings.Contains(ua, "Watchtower"):
		return "watchtower"
	case strings.Contains(ua, "go-containerregistry"), strings.Contains(ua, "berth"):
		return "berth"
	case strings.HasPrefix(ua, "docker/"):
		return "engine"
	}
	return "other(" + ua + ")"
}

func kind(path string) string {
	switch {
	case path == "/v2/" || path == "/v2":
		return "/v2/"
	case strings.Contains(path, "/manifests/"):
		return "manifest"
	case strings.Contains(path, "/blobs/"):
		return "blob"
	case strings.HasSuffix(path, "/tags/list"):
		return "tags"
	}
	return path
}

// watchResult is one contender's cost over the window.
type watchResult struct {
	name     string
	requests map[string]int // by "client METHOD kind", over the window
	window   time.Duration
	cpu      time.Duration // utime+stime over the window
	rss      int           // VmRSS at the end of the window, KiB
	rssMax   int           // highest VmRSS sampled in the window, KiB
	note     string
}

// procCPU is utime+stime of pid (clock ticks of 10 ms, USER_HZ on Linux).
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	k, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+k) * 10 * time.Millisecond
}

// observe waits warm, then samples pid's CPU and RSS every second over window and takes the
// counter's requests of that window.
func observe(ctx context.Context, name string, pid int, c *counter, warm, window time.Duration) (watchResult, error) {
	select {
	case <-time.After(warm):
	case <-ctx.Done():
		return watchResult{}, ctx.Err()
	}
	r := watchResult{name: name}
	c.take()
	cpu0, t0 := procCPU(pid), time.Now()
	for end := t0.Add(window); time.Now().Before(end); {
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return r, ctx.Err()
		}
		r.rssMax = max(r.rssMax, procStatus(pid, "VmRSS"))
	}
	r.requests, r.window = c.take(), time.Since(t0)
	r.cpu, r.rss = procCPU(pid)-cpu0, procStatus(pid, "VmRSS")
	return r, nil
}

// watchCost runs the measurement with -watch N services and prints its table.
func (h *harness) watchCost(ctx context.Context) error {
	n, interval := h.opts.watch, h.opts.watchInterval
	c, err := startCounter(registry())
	if err != nil {
		return err
	}
	defer c.close()
	ref := c.addr + "/acme/watchbench:" + randHex(4)
	if err := buildImage(ctx, h.eng, ref, "", map[string][]byte{"Dockerfile": []byte("FROM busybox:1\nLABEL berth.bench=watch\n")}); err != nil {
		return err
	}
	defer removeImage(context.Background(), h.eng, ref)
	if err := pushImage(ctx, h.eng, ref); err != nil {
		return err
	}
	dir, err := h.watchProject(ref, n, interval)
	if err != nil {
		return err
	}
	compose := func(ctx context.Context, args ...string) error {
		cmd := exec.CommandContext(ctx, h.composeBins[0], args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("compose %s: %w\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if err := compose(ctx, "down", "--timeout", "0", "--remove-orphans"); err != nil {
			h.logf("cleanup: %v", err)
		}
	}()
	t0 := time.Now()
	if err := compose(ctx, "up", "-d", "--pull", "never", "--quiet-pull"); err != nil {
		return err
	}
	h.logf("%d services up in %.1f s, image %s; setup requests %v", n, time.Since(t0).Seconds(), ref, c.take())
	warm, window := interval+interval/3, h.opts.watchWindow
	var results []watchResult

	b, err := startBerth(ctx, h.berthBin, h.work, []string{dir}, "WATCH=labelled", "STATE_DIR="+filepath.Join(h.work, "watchstate"))
	if err != nil {
		return err
	}
	r, err := observe(ctx, "berth", b.cmd.Process.Pid, c, warm, window)
	r.note = fmt.Sprintf("%d failed checks, %d deploys logged", b.count("watch: check failed"), b.count("new digest; deploying"))
	b.stop()
	if err != nil {
		return err
	}
	results = append(results, r)
	log, _ := os.ReadFile(b.logPath)
	h.logf("berth: %v, CPU %v, RSS %d KiB; %s; its log ends:\n%s", r.requests, r.cpu, r.rss, r.note, lastLines(log, 4))

	bin, why := watchtowerBinary(ctx, h.opts)
	if bin == "" {
		h.logf("watchtower %s", why)
	}
	for _, netns := range []bool{false, true} {
		if bin == "" || netns && !h.opts.watchNetns {
			continue
		}
		r, err := h.observeWatchtower(ctx, bin, c, interval, warm, window, netns)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Fprint(h.log, "\n"+watchMarkdown(results, n, interval))
	return nil
}

// observeWatchtower runs the fork's poll for one window; netns runs it as the deploy
// measurement does, in a network namespace of its own where the registry is out of reach.
func (h *harness) observeWatchtower(ctx context.Context, bin string, c *counter, interval, warm, window time.Duration, netns bool) (watchResult, error) {
	name := "watchtower " + watchtowerVersion + ", registry reachable"
	if netns {
		name = "watchtower " + watchtowerVersion + ", own netns (HEAD fails)"
	}
	w, err := startWatchtowerPoll(bin, h.work, interval, netns)
	if err != nil {
		return watchResult{}, err
	}
	r, err := observe(ctx, name, w.cmd.Process.Pid, c, warm, window)
	w.stop()
	if err != nil {
		return r, err
	}
	log, _ := os.ReadFile(w.logPath)
	h.logf("%s: %v, CPU %v, RSS %d KiB; its log ends:\n%s", name, r.requests, r.cpu, r.rss, lastLines(log, 6))
	return r, nil
}

// watchProject writes a compose project of n sleeping busybox services running ref, labelled
// for berth's watch mode and for the fork's label-enable and scope.
func (h *harness) watchProject(ref string, n int, interval time.Duration) (string, error) {
	name := "benchwatch" + randHex(4)
	dir := filepath.Join(h.work, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "name: %s\nx-svc: &svc\n  image: %s\n  command: [\"sleep\", \"86400\"]\n  init: true\n  network_mode: none\n", name, ref)
	fmt.Fprintf(&b, "  labels:\n    berth.watch: \"true\"\n    berth.watch.interval: %s\n", interval)
	fmt.Fprintf(&b, "    com.centurylinklabs.watchtower.enable: \"true\"\n    com.centurylinklabs.watchtower.scope: %s\nservices:\n", watchtowerScope)
	for i := range n {
		fmt.Fprintf(&b, "  s%03d: *svc\n", i)
	}
	return dir, os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(b.String()), 0o644)
}

// startWatchtowerPoll runs the fork polling every interval, without its HTTP API (so it listens
// on nothing), in the host's network namespace so its HEAD reaches the loopback proxy (the
// sandbox registry speaks plain HTTP, which the fork reaches only with --registry-tls-skip), or
// with netns in one of its own, where its HEAD fails and it falls back to a pull by the engine.
func startWatchtowerPoll(bin, workDir string, interval time.Duration, netns bool) (*watchtowerProc, error) {
	logPath := filepath.Join(workDir, "watchtower-poll-"+strconv.FormatBool(netns)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{"--interval", strconv.Itoa(int(interval.Seconds())), "--label-enable",
		"--scope", watchtowerScope, "--registry-tls-skip", "--no-startup-message"}
	cmd := exec.Command(bin, args...)
	if netns { // as in startWatchtower: unshare execs sh, which execs the fork, so the pid is the fork's
		cmd = exec.Command("unshare", append([]string{"-n", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, bin}, args...)...)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start watchtower: %w", err)
	}
	w := &watchtowerProc{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	go func() { w.exited <- cmd.Wait() }()
	return w, nil
}

// watchMarkdown is the table of the results, scaled to an hour.
func watchMarkdown(rs []watchResult, n int, interval time.Duration) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s UTC, load average %s: %d watched services, interval %s, window %s after a warm-up of 4/3 interval:\n\n",
		time.Now().UTC().Format("2006-01-02 15:04"), loadAverage(), n, interval, rs[0].window.Round(time.Second))
	b.WriteString("| watcher | requests / service / hour | requests / service / check | what it sent (window) | CPU s / hour | RSS end (max) |\n|---|---|---|---|---|---|\n")
	for _, r := range rs {
		total := 0
		var kinds []string
		for k, v := range r.requests {
			total += v
			kinds = append(kinds, fmt.Sprintf("%s ×%d", k, v))
		}
		sort.Strings(kinds)
		hours := r.window.Hours()
		perHour := float64(total) / float64(n) / hours
		fmt.Fprintf(&b, "| %s | %.0f | %.2f | %s | %.1f | %.1f MiB (%.1f) |\n", r.name, perHour, perHour*interval.Hours(),
			strings.Join(kinds, ", "), r.cpu.Seconds()/hours, float64(r.rss)/1024, float64(r.rssMax)/1024)
	}
	return b.String()
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
