package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// report collects every figure and renders BENCHMARKS.md's generated block.
type report struct {
	date                      time.Time
	opts                      options
	machine                   string
	uptimeBefore, uptimeAfter string
	composeVers               []string
	methods                   []method
	startFirst                bool
	samples                   map[string]map[string][]sample // size -> method -> samples
	sizes                     []string
	ready                     []time.Duration
	idleRSS, idleAnon         int
	deployHWM                 int
	loadHWM                   int
	accepted                  acceptedLoad
	acceptedInProcess         []time.Duration
	acceptedCPU               time.Duration // berth's CPU (utime+stime) while answering the loopback load
	acceptedInProcessCPU      time.Duration // the process's CPU while answering the in-process load
	rejected                  rejectedLoad
	inProcess                 float64
	imageSize                 int64
	imageErr                  string
	floor                     map[string][]time.Duration
	own                       map[string][]deploySplit // by order, from berth's deploy records
	watchtowerWhy             string                   // why the Watchtower fork was not measured
	watchtowerRSS             int
	watchtowerAnon            int
}

func (r *report) add(size, m string, s sample) {
	if r.samples == nil {
		r.samples = map[string]map[string][]sample{}
	}
	if r.samples[size] == nil {
		r.samples[size] = map[string][]sample{}
		r.sizes = append(r.sizes, size)
	}
	r.samples[size][m] = append(r.samples[size][m], s)
}

// stat is the median and range of some figure.
type stat struct{ med, lo, hi float64 }

func statOf(v []float64) stat {
	if len(v) == 0 {
		return stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	med := s[len(s)/2]
	if len(s)%2 == 0 {
		med = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return stat{med, s[0], s[len(s)-1]}
}

func (s stat) String() string { return fmt.Sprintf("%.0f (%.0f–%.0f)", s.med, s.lo, s.hi) }

func field[T any](samples []T, f func(T) float64) stat {
	var v []float64
	for _, s := range samples {
		v = append(v, f(s))
	}
	return statOf(v)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func (r *report) markdown() string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("## Results of %s", r.date.Format("2006-01-02 15:04 UTC"))
	w("")
	w("Machine: %s. Load average (1, 5, 15 min) %s at the start, %s at the end; the machine was shared with other test runs.", r.machine, r.uptimeBefore, r.uptimeAfter)
	skips := ""
	if r.opts.skipDeploys {
		skips += " -skip-deploys"
	}
	if r.opts.skipImage {
		skips += " -skip-image"
	}
	w("Command: `go run ./bench -rounds %d -sizes %s -large-layers %d -large-layer-mb %d -senders %d -per-sender %d -workers %d -reject-for %s%s`.",
		r.opts.rounds, r.opts.sizes, r.opts.largeLayers, r.opts.largeLayerMB, r.opts.senders, r.opts.perSender, r.opts.workers, r.opts.rejectFor, skips)
	w("Figures are medians with the range (min–max) in brackets, in milliseconds unless said otherwise.")
	w("")
	if len(r.sizes) > 0 {
		w("### Push in the registry → first answer from the new version, and downtime")
		w("")
		w("Each round pushes a new version (the engine's copy of its layers is deleted, so every new layer is pulled), then either posts the webhook to berth, triggers the Watchtower fork through its HTTP API (`--http-api-update`, bearer token, `--label-enable --scope`, in a network namespace of its own so its registry check to the internet fails at once; it pulls through the engine) or runs `compose pull -q web && compose up -d web`; a prober container on the project network requests the service every millisecond. Methods alternate, in a rotating order, within each of %d rounds. Small image: busybox httpd, about 2 MB; large: plus %d layers of %d MiB of random data.", r.opts.rounds, r.opts.largeLayers, r.opts.largeLayerMB)
		w("")
		w("| image | method | push → new version answers | ratio to compose %s | ratio to compose %s | longest gap | failed probes | trigger (CLI run or 202) |", r.composeVers[0], r.composeVers[len(r.composeVers)-1])
		w("|---|---|---|---|---|---|---|---|")
		for _, size := range r.sizes {
			byMethod := r.samples[size]
			ref := func(i int) (float64, float64) {
				s := byMethod["compose "+r.composeVers[i]]
				return field(s, func(s sample) float64 { return ms(s.latency) }).med, field(s, func(s sample) float64 { return ms(s.gap) }).med
			}
			refA, _ := ref(0)
			refB, _ := ref(len(r.composeVers) - 1)
			for _, m := range r.methods {
				s := byMethod[m.name]
				lat := field(s, func(s sample) float64 { return ms(s.latency) })
				w("| %s | %s | %s | %s | %s | %s | %s | %s |", size, m.name, lat, ratio(lat.med, refA), ratio(lat.med, refB),
					field(s, func(s sample) float64 { return ms(s.gap) }), field(s, func(s sample) float64 { return float64(s.failures) }),
					field(s, func(s sample) float64 { return ms(s.trigger) }))
			}
			if !r.startFirst {
				w("| %s | berth start-first | pending: not on main yet | | | | | |", size)
			}
			if r.watchtowerWhy != "" {
				w("| %s | watchtower %s | %s | | | | | |", size, watchtowerVersion, r.watchtowerWhy)
			}
		}
		w("")
		r.afterTable(w)
		w("Downtime ratios (longest gap, berth ÷ compose, medians):")
		w("")
		for _, size := range r.sizes {
			for _, m := range r.methods {
				if !m.berth {
					continue
				}
				g := field(r.samples[size][m.name], func(s sample) float64 { return ms(s.gap) }).med
				var parts []string
				for _, v := range r.composeVers {
					parts = append(parts, fmt.Sprintf("%s %s", v, ratio(g, field(r.samples[size]["compose "+v], func(s sample) float64 { return ms(s.gap) }).med)))
				}
				w("- %s image, %s: %s", size, m.name, strings.Join(parts, ", "))
			}
		}
		w("")
		r.watchtowerRatios(w)
	}
	if len(r.floor) > 0 {
		w("### The engine's own cost (raw Engine API calls, small image, same network)")
		w("")
		w("| call | median (min–max) ms |")
		w("|---|---|")
		for _, k := range []string{"ImagePull", "ContainerCreate", "ContainerStart", "ContainerStop", "ContainerRemove"} {
			var v []float64
			for _, d := range r.floor[k] {
				v = append(v, ms(d))
			}
			st := statOf(v)
			w("| %s | %.1f (%.1f–%.1f) |", k, st.med, st.lo, st.hi)
		}
		w("")
		r.floorLine(w)
	}
	w("### Webhook handling (loopback, berth as a subprocess logging at info to a file)")
	w("")
	lat := r.accepted.latencies
	w("| measure | figure | target |")
	w("|---|---|---|")
	w("| 202 latency, %d concurrent senders × %d valid webhooks | p50 %.2f ms, p99 %.2f ms, max %.2f ms (statuses %v, %d errors, %.1f s) | p99 < 5 ms |",
		r.opts.senders, r.opts.perSender, ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 100)), r.accepted.statuses, r.accepted.errors, r.accepted.took.Seconds())
	w("| 202 latency, same load in-process (handler and deployer, no network, deploys cancelled) | p50 %.2f ms, p99 %.2f ms | |",
		ms(percentile(r.acceptedInProcess, 50)), ms(percentile(r.acceptedInProcess, 99)))
	if n := r.accepted.statuses[http.StatusAccepted]; n > 0 {
		w("| berth's CPU per accepted webhook, through loopback (utime+stime of the process over the load ÷ 202s; 10 ms ticks) | %.3f ms (%s for %d) | |",
			ms(r.acceptedCPU)/float64(n), r.acceptedCPU, n)
	}
	if n := len(r.acceptedInProcess); n > 0 {
		w("| CPU per accepted webhook, in-process (getrusage over the load, senders included ÷ 202s) | %.3f ms (%s for %d) | ≤ 0.05 ms |",
			ms(r.acceptedInProcessCPU)/float64(n), r.acceptedInProcessCPU.Round(time.Millisecond), n)
	}
	w("| rejected webhooks (bad secret), %d keep-alive senders for %s | %.0f req/s (statuses %v, %d errors) | ≥ 20k req/s on 2 cores |",
		r.opts.workers, r.opts.rejectFor, r.rejected.perSecond(), r.rejected.statuses, r.rejected.errors)
	w("| rejected webhooks, handler in-process (no network, no log output), all cores | %.0f req/s | |", r.inProcess)
	w("")
	w("### Footprint")
	w("")
	var ready []float64
	for _, d := range r.ready {
		ready = append(ready, ms(d))
	}
	w("| measure | figure | target |")
	w("|---|---|---|")
	rs := statOf(ready)
	w("| start-to-ready (exec → first /healthz 200), %d starts | %.1f (%.1f–%.1f) ms | < 100 ms |", len(ready), rs.med, rs.lo, rs.hi)
	w("| idle RSS (VmRSS, 2 s after ready) | %.1f MiB, of which %.1f MiB anonymous (heap, stacks) and the rest mapped binary | ≤ 12 MiB |",
		float64(r.idleRSS)/1024, float64(r.idleAnon)/1024)
	if r.deployHWM > 0 {
		w("| peak RSS over the deploys (VmHWM) | %.1f MiB | |", float64(r.deployHWM)/1024)
	}
	w("| peak RSS after the webhook load (VmHWM) | %.1f MiB | |", float64(r.loadHWM)/1024)
	if r.watchtowerRSS > 0 {
		w("| idle RSS of the Watchtower fork %s (VmRSS, 2 s after its API listens) | %.1f MiB, of which %.1f MiB anonymous | berth ≤ this |",
			watchtowerVersion, float64(r.watchtowerRSS)/1024, float64(r.watchtowerAnon)/1024)
	}
	switch {
	case r.imageErr != "":
		w("| image size | not measured: %s | ≤ 15 MB |", r.imageErr)
	case r.imageSize > 0:
		w("| image size (repo Dockerfile) | %.1f MB (%d bytes) | ≤ 15 MB |", float64(r.imageSize)/1e6, r.imageSize)
	}
	w("")
	return b.String()
}

const (
	beginMark = "<!-- bench:begin (generated by go run ./bench; edits inside are overwritten) -->"
	endMark   = "<!-- bench:end -->"
)

// writeReport replaces the generated block of path, keeping the text around it.
func writeReport(path, text string) error {
	block := beginMark + "\n" + text + endMark + "\n"
	old, err := os.ReadFile(path)
	if err != nil {
		return os.WriteFile(path, []byte("# Benchmarks\n\n"+block), 0o644)
	}
	s := string(old)
	i, j := strings.Index(s, beginMark), strings.Index(s, endMark)
	if i < 0 || j < i {
		return os.WriteFile(path, []byte(s+"\n"+block), 0o644)
	}
	return os.WriteFile(path, []byte(s[:i]+block+strings.TrimPrefix(s[j+len(endMark):], "\n")), 0o644)
}

// engineFloor times the raw Engine API calls a recreate is made of, on the small project's
// image and network, so the report can say how much of a deploy is the engine's.
func engineFloor(ctx context.Context, h *harness, p *project) (map[string][]time.Duration, error) {
	out := map[string][]time.Duration{}
	useInit := true
	for i := range h.opts.rounds {
		name := fmt.Sprintf("%s-floor-%d", p.name, i)
		image, err := floorPull(ctx, h, p, out)
		if err != nil {
			return nil, err
		}
		t := time.Now()
		res, err := h.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
			Name:       name,
			Config:     &container.Config{Image: image},
			HostConfig: &container.HostConfig{Init: &useInit, NetworkMode: container.NetworkMode(p.name + "_default")},
		})
		if err != nil {
			return nil, fmt.Errorf("engine floor: create: %w", err)
		}
		out["ContainerCreate"] = append(out["ContainerCreate"], time.Since(t))
		t = time.Now()
		if _, err := h.eng.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
			_, _ = h.eng.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true})
			return nil, fmt.Errorf("engine floor: start: %w", err)
		}
		out["ContainerStart"] = append(out["ContainerStart"], time.Since(t))
		time.Sleep(200 * time.Millisecond)
		t = time.Now()
		if _, err := h.eng.ContainerStop(ctx, res.ID, client.ContainerStopOptions{}); err != nil {
			return nil, fmt.Errorf("engine floor: stop: %w", err)
		}
		out["ContainerStop"] = append(out["ContainerStop"], time.Since(t))
		t = time.Now()
		if _, err := h.eng.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
			return nil, fmt.Errorf("engine floor: remove: %w", err)
		}
		out["ContainerRemove"] = append(out["ContainerRemove"], time.Since(t))
	}
	return out, nil
}

// imageSize builds the repository's Dockerfile (its tracked and untracked, not ignored, files)
// and returns the image's size.
func (h *harness) imageSize(ctx context.Context) (int64, error) {
	if _, err := os.Stat(h.root + "/Dockerfile"); err != nil {
		return 0, fmt.Errorf("no Dockerfile in the repository")
	}
	out, err := exec.CommandContext(ctx, "git", "-C", h.root, "ls-files", "-co", "--exclude-standard").Output()
	if err != nil {
		return 0, fmt.Errorf("git ls-files: %w", err)
	}
	ref := "berth-bench-image:" + randHex(4)
	h.logf("building berth's image as %s (network host)", ref)
	if err := buildDir(ctx, h.eng, ref, h.root, strings.Fields(string(out))); err != nil {
		return 0, err
	}
	defer removeImage(context.Background(), h.eng, ref)
	img, err := h.eng.ImageInspect(ctx, ref)
	if err != nil {
		return 0, err
	}
	return img.Size, nil
}
