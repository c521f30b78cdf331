// Command bench measures berth against the docker compose CLI on the sandbox engine and
// registry, side by side and alternated, and writes the figures to BENCHMARKS.md.
//
//	eval "$(../shared/sandbox/engine up)"
//	go run ./bench -rounds 5
//
// It is not part of the test suite: it asserts nothing, it reports medians and spreads.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the harness's flags.
type options struct {
	rounds          int
	sizes           string
	largeLayers     int
	largeLayerMB    int
	composeDir      string
	versions        string
	startFirst      string
	out             string
	senders         int
	perSender       int
	workers         int
	rejectFor       time.Duration
	readyRuns       int
	cpuProfile      string
	acceptedProfile string
	skipDeploys     bool
	skipImage       bool
	keep            bool
	watchtower      string
	watchtowerSrc   string
	watch           int
	watchInterval   time.Duration
	watchWindow     time.Duration
	watchNetns      bool
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	home, _ := os.UserHomeDir()
	fs.IntVar(&o.rounds, "rounds", 5, "deploy rounds per method and image size (methods alternate within a round)")
	fs.StringVar(&o.sizes, "sizes", "small,large", "image sizes to deploy: small, large or both")
	fs.IntVar(&o.largeLayers, "large-layers", 4, "random-data layers in the large image")
	fs.IntVar(&o.largeLayerMB, "large-layer-mb", 30, "MiB of random data per layer of the large image")
	fs.StringVar(&o.composeDir, "compose-dir", filepath.Join(home, ".cache", "berth-sandbox"), "directory holding docker-compose-<version> binaries")
	fs.StringVar(&o.versions, "compose", "v5.6.0,v2.40.3", "compose CLI versions to compare with")
	fs.StringVar(&o.startFirst, "start-first", "auto", "measure berth start-first: on, off, or auto (on when the deployer implements order: start-first)")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "markdown file the results are written to (its text outside the generated block is kept); empty: none")
	fs.IntVar(&o.senders, "senders", 200, "concurrent senders of valid webhooks")
	fs.IntVar(&o.perSender, "per-sender", 5, "valid webhooks each sender posts")
	fs.IntVar(&o.workers, "workers", 64, "concurrent senders of rejected webhooks")
	fs.DurationVar(&o.rejectFor, "reject-for", 5*time.Second, "how long to send rejected webhooks")
	fs.IntVar(&o.readyRuns, "ready-runs", 5, "berth starts timed for start-to-ready")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the in-process rejected-webhook run to this file")
	fs.StringVar(&o.acceptedProfile, "accepted-cpuprofile", "", "write a CPU profile of the in-process 202 run to this file")
	fs.BoolVar(&o.skipDeploys, "skip-deploys", false, "skip the deploy and downtime measurements")
	fs.BoolVar(&o.skipImage, "skip-image", false, "skip building berth's image for its size")
	fs.StringVar(&o.watchtower, "watchtower", "auto", "the Watchtower fork ("+watchtowerVersion+") as a contender: auto (the cached build, else built from -watchtower-src, else go install), off, or the path of its binary")
	fs.StringVar(&o.watchtowerSrc, "watchtower-src", filepath.Join(home, ".cache", "berth-bench", "watchtower-"+watchtowerVersion+"-src"), "source tree of the Watchtower fork at "+watchtowerVersion+" (its binary is cached beside it)")
	fs.IntVar(&o.watch, "watch", 0, "with -skip-deploys: measure only the cost of watching this many compose services, berth's watch mode against the fork's poll (0: off)")
	fs.DurationVar(&o.watchInterval, "watch-interval", 15*time.Second, "with -watch: the interval both watchers check at")
	fs.DurationVar(&o.watchWindow, "watch-window", 45*time.Second, "with -watch: how long each watcher's requests, CPU and RSS are counted, after a warm-up of 4/3 interval")
	fs.BoolVar(&o.watchNetns, "watch-netns", true, "with -watch: also run the fork in a network namespace of its own, as the deploy measurement does (its HEAD fails there and it pulls)")
	fs.BoolVar(&o.keep, "keep", false, "keep the work directory (berth logs, compose projects' files)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if o.rounds < 1 || o.senders < 1 || o.perSender < 1 || o.workers < 1 || o.readyRuns < 1 {
		return o, errors.New("-rounds, -senders, -per-sender, -workers and -ready-runs must be at least 1")
	}
	if o.rejectFor <= 0 || o.rejectFor > 2*time.Minute {
		return o, errors.New("-reject-for must be between 0 and 2m")
	}
	if o.watch < 0 || o.watch > 0 && (!o.skipDeploys || o.watchInterval < time.Second || o.watchWindow < o.watchInterval) {
		return o, errors.New("-watch needs -skip-deploys, -watch-interval of at least 1s and -watch-window of at least one interval")
	}
	return o, nil
}

// harness is the state shared by the measurements.
type harness struct {
	opts        options
	eng         *client.Client
	root        string // the repository
	work        string
	berthBin    string
	proberImage string
	composeBins []string
	composeVers []string
	berth       *berthProc
	watchtower  *watchtowerProc
	hubPayload  string
	cleanups    []func()
	log         io.Writer
}

func registry() string {
	if r := os.Getenv("REGISTRY"); r != "" {
		return r
	}
	return "127.0.0.1:5000"
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	opts, err := parseFlags(args)
	if err != nil {
		return err
	}
	h := &harness{opts: opts, log: stdout}
	defer func() {
		for i := len(h.cleanups) - 1; i >= 0; i-- {
			h.cleanups[i]()
		}
	}()
	if err := h.setUp(ctx); err != nil {
		return err
	}
	if opts.watch > 0 {
		return h.watchCost(ctx)
	}
	rep := &report{date: time.Now().UTC(), opts: opts, composeVers: h.composeVers, uptimeBefore: loadAverage()}
	rep.machine = describeMachine(ctx, h.eng)

	// Start-to-ready first, on a quiet berth with nothing queued.
	for range opts.readyRuns {
		p, err := startBerth(ctx, h.berthBin, h.work, []string{h.emptyProject()})
		if err != nil {
			return err
		}
		rep.ready = append(rep.ready, p.ready)
		p.stop()
	}
	h.logf("start-to-ready: %v", rep.ready)

	var projects []*project
	sizes := strings.Split(opts.sizes, ",")
	if opts.skipDeploys {
		sizes = nil
	}
	for _, size := range sizes {
		layers, mb := 0, 0
		switch strings.TrimSpace(size) {
		case "small":
		case "large":
			layers, mb = opts.largeLayers, opts.largeLayerMB
		default:
			return fmt.Errorf("-sizes: unknown size %q; use small and/or large", size)
		}
		p, err := newProject(ctx, h, strings.TrimSpace(size), layers, mb)
		if err != nil {
			return err
		}
		projects = append(projects, p)
	}
	var dirs []string
	for _, p := range projects {
		dirs = append(dirs, p.dir)
	}
	loadTag := ""
	if len(projects) > 0 {
		loadTag = projects[0].tag
	} else {
		// Without deploys the webhook load targets a project that was never started, on a tag
		// the registry does not have: berth answers 202 and each deploy fails at its pull,
		// leaving nothing on the engine.
		dir, tag := h.phantomProject()
		dirs, loadTag = append(dirs, dir), tag
	}
	// With a STATE_DIR, as users run it: accepted pushes and the deploy journal are synced to
	// disk, and the deploy records say where berth's time went.
	stateDir := filepath.Join(h.work, "state")
	h.berth, err = startBerth(ctx, h.berthBin, h.work, dirs, "STATE_DIR="+stateDir)
	if err != nil {
		return err
	}
	defer h.berth.stop()
	time.Sleep(2 * time.Second) // let start-up garbage settle before the idle reading
	rep.idleRSS, rep.idleAnon = h.berth.status("VmRSS"), h.berth.status("RssAnon")
	h.logf("idle RSS: %d KiB (%d KiB anonymous)", rep.idleRSS, rep.idleAnon)

	methods := []method{{name: "berth stop-first", berth: true}}
	rep.startFirst = h.startFirstSupported()
	if rep.startFirst {
		methods = append(methods, method{name: "berth start-first", berth: true, startFirst: true})
	}
	if !opts.skipDeploys {
		if err := h.startWatchtower(ctx, rep); err != nil {
			return err
		}
		if h.watchtower != nil {
			defer h.watchtower.stop()
			methods = append(methods, method{name: "watchtower " + watchtowerVersion, watchtower: true})
		}
	}
	for i, bin := range h.composeBins {
		methods = append(methods, method{name: "compose " + h.composeVers[i], compose: bin})
	}
	rep.methods = methods
	if !opts.skipDeploys {
		for _, p := range projects {
			size := sizeName(p)
			for round := range opts.rounds {
				for k := range methods {
					m := methods[(k+round)%len(methods)] // rotate the order every round
					s, err := p.deployOnce(ctx, h, m, round)
					if err != nil {
						return fmt.Errorf("%s, %s image, round %d: %w", m.name, size, round+1, err)
					}
					h.logf("%-6s round %d %-18s new version after %7.1f ms, longest gap %7.1f ms, %4d/%5d failed %v, trigger %7.1f ms",
						size, round+1, m.name, ms(s.latency), ms(s.gap), s.failures, s.requests, s.errors, ms(s.trigger))
					rep.add(size, m.name, s)
				}
			}
		}
		rep.deployHWM = h.berth.status("VmHWM")
		h.logf("RSS high-water mark after the deploys: %d KiB", rep.deployHWM)
		if rep.own, err = ownTimes(stateDir); err != nil {
			return fmt.Errorf("berth's deploy records: %w", err)
		}
		rep.floor, err = engineFloor(ctx, h, projects[0])
		if err != nil {
			return err
		}
	}

	// Webhook handling, through loopback against the subprocess.
	pid := h.berth.cmd.Process.Pid
	cpu0 := procCPU(pid)
	rep.accepted = loadAccepted(ctx, h.berth.url, h.hubPayload, loadTag, opts.senders, opts.perSender)
	rep.acceptedCPU = procCPU(pid) - cpu0
	h.logf("202 latency under %d senders: p50 %.2f ms, p99 %.2f ms, statuses %v", opts.senders,
		ms(percentile(rep.accepted.latencies, 50)), ms(percentile(rep.accepted.latencies, 99)), rep.accepted.statuses)
	waitQueueIdle(h.berth)
	rep.acceptedInProcess, rep.acceptedInProcessCPU, err = inProcessAccepted(h.eng, dirs, h.hubPayload, loadTag, opts.senders, opts.perSender, opts.acceptedProfile)
	if err != nil {
		return err
	}
	h.logf("202 latency in-process (handler and deployer, no network): p50 %.2f ms, p99 %.2f ms",
		ms(percentile(rep.acceptedInProcess, 50)), ms(percentile(rep.acceptedInProcess, 99)))
	rep.rejected = loadRejected(ctx, h.berth.url, h.hubPayload, opts.workers, opts.rejectFor)
	h.logf("rejected webhooks: %.0f req/s, statuses %v", rep.rejected.perSecond(), rep.rejected.statuses)
	rep.loadHWM = h.berth.status("VmHWM")
	rep.inProcess, err = inProcessRejected(h.hubPayload, 3*time.Second, opts.cpuProfile)
	if err != nil {
		return err
	}
	h.logf("rejected webhooks in-process (handler only): %.0f req/s", rep.inProcess)

	if !opts.skipImage {
		buildCtx, cancel := context.WithTimeout(ctx, 10*time.Minute) // a loaded machine needs minutes
		size, err := h.imageSize(buildCtx)
		cancel()
		if err != nil {
			rep.imageErr = err.Error()
		} else {
			rep.imageSize = size
		}
	}
	rep.uptimeAfter = loadAverage()
	text := rep.markdown()
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, text)
	if opts.out != "" {
		return writeReport(filepath.Join(h.root, opts.out), text)
	}
	return nil
}

// startWatchtower starts the Watchtower fork when it is available and reads its idle RSS;
// when it is not, rep says why.
func (h *harness) startWatchtower(ctx context.Context, rep *report) error {
	bin, why := watchtowerBinary(ctx, h.opts)
	if bin == "" {
		rep.watchtowerWhy = why
		h.logf("watchtower %s", why)
		return nil
	}
	w, err := startWatchtower(ctx, bin, h.work)
	if err != nil {
		return err
	}
	h.watchtower = w
	time.Sleep(2 * time.Second) // as for berth: idle, after start
	rep.watchtowerRSS, rep.watchtowerAnon = w.rss()
	h.logf("watchtower idle RSS: %d KiB (%d KiB anonymous)", rep.watchtowerRSS, rep.watchtowerAnon)
	return nil
}

func sizeName(p *project) string {
	if p.layers == 0 {
		return "small"
	}
	return "large"
}

func (h *harness) logf(format string, args ...any) {
	fmt.Fprintf(h.log, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// setUp connects to the engine, builds berth and the prober, and finds the compose CLIs.
func (h *harness) setUp(ctx context.Context) error {
	var err error
	h.eng, err = client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	if _, err := h.eng.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		return fmt.Errorf("no Docker Engine at DOCKER_HOST=%q (%w); start one with `eval \"$(../shared/sandbox/engine up)\"`", os.Getenv("DOCKER_HOST"), err)
	}
	h.cleanups = append(h.cleanups, func() { h.eng.Close() })
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return fmt.Errorf("run the harness inside berth's repository: go env GOMOD: %v", err)
	}
	h.root = filepath.Dir(strings.TrimSpace(string(out)))
	h.work, err = os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return err
	}
	if !h.opts.keep {
		h.cleanups = append(h.cleanups, func() { os.RemoveAll(h.work) })
	} else {
		h.logf("work directory: %s", h.work)
	}
	for _, v := range strings.Split(h.opts.versions, ",") {
		bin := filepath.Join(h.opts.composeDir, "docker-compose-"+strings.TrimSpace(v))
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("compose %s not found at %s; build it with `../shared/sandbox/engine compose %s`", v, bin, v)
		}
		h.composeBins = append(h.composeBins, bin)
		h.composeVers = append(h.composeVers, strings.TrimSpace(v))
	}
	b, err := os.ReadFile(filepath.Join(h.root, "handler", "testdata", "dockerhub-push.json"))
	if err != nil {
		return err
	}
	h.hubPayload = string(b)

	h.berthBin = filepath.Join(h.work, "berth")
	if out, err := goBuild(ctx, h.root, h.berthBin, "."); err != nil {
		return fmt.Errorf("go build berth: %w\n%s", err, out)
	}
	prober := filepath.Join(h.work, "prober")
	if out, err := goBuild(ctx, h.root, prober, "./bench/prober"); err != nil {
		return fmt.Errorf("go build prober: %w\n%s", err, out)
	}
	pb, err := os.ReadFile(prober)
	if err != nil {
		return err
	}
	h.proberImage = "berth-bench-prober:" + randHex(4)
	if err := buildImage(ctx, h.eng, h.proberImage, "", map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY prober /prober\nENTRYPOINT [\"/prober\"]\n"),
		"prober":     pb,
	}); err != nil {
		return err
	}
	h.cleanups = append(h.cleanups, func() { removeImage(context.Background(), h.eng, h.proberImage) })
	h.logf("built berth and the prober in %s", h.work)
	return nil
}

// goBuild builds a static binary of pkg, as berth's Dockerfile does.
func goBuild(ctx context.Context, root, out, pkg string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	return cmd.CombinedOutput()
}

// emptyProject is a compose project with no service using acme/web, for timing berth's start.
func (h *harness) emptyProject() string {
	dir := filepath.Join(h.work, "idle")
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("name: benchidle\nservices:\n  noop:\n    image: busybox:1\n"), 0o644)
	return dir
}

// phantomProject is a compose project that is never started, whose web service runs a tag
// nobody pushed.
func (h *harness) phantomProject() (dir, tag string) {
	name := "benchphantom" + randHex(4)
	tag = "bench-missing-" + randHex(4)
	dir = filepath.Join(h.work, name)
	_ = os.MkdirAll(dir, 0o755)
	_ = os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("name: "+name+"\nservices:\n  web:\n    image: acme/web:"+tag+"\n    init: true\n"), 0o644)
	return dir, tag
}

// startFirstSupported reads -start-first; auto looks for the start-first order in the deployer.
func (h *harness) startFirstSupported() bool {
	switch h.opts.startFirst {
	case "on":
		return true
	case "off":
		return false
	}
	files, _ := filepath.Glob(filepath.Join(h.root, "deployer", "*.go"))
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), `"start-first"`) {
			return true
		}
	}
	return false
}

// waitQueueIdle waits (bounded) until berth has no deploy running or waiting, as its
// berth_queue_depth metric says.
func waitQueueIdle(p *berthProc) {
	for end := time.Now().Add(2 * time.Minute); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(p.url + "/metrics")
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "\nberth_queue_depth 0\n") {
			return
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func describeMachine(ctx context.Context, eng *client.Client) string {
	mem := "?"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "MemTotal:"); ok {
				var kb int
				fmt.Sscan(strings.TrimSpace(v), &kb)
				mem = fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
			}
		}
	}
	cpu := "?"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	kernel := "?"
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		kernel = strings.TrimSpace(string(b))
	}
	engine := "?"
	if v, err := eng.ServerVersion(ctx, client.ServerVersionOptions{}); err == nil {
		engine = fmt.Sprintf("Docker Engine %s (API %s)", v.Version, v.APIVersion)
	}
	return fmt.Sprintf("%d CPUs (nproc; %s), %s memory, kernel %s, %s, %s/%s, %s", runtime.NumCPU(), cpu, mem, kernel, engine,
		runtime.GOOS, runtime.GOARCH, runtime.Version())
}
