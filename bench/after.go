package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// afterTable says, per method, what each deploy left: whether compose would recreate the
// service (drift) and whether the anonymous volume went with it.
func (r *report) afterTable(w func(string, ...any)) {
	w("What each deploy left (counted over the rounds): a `compose %s up -d --dry-run web` afterwards that would recreate the service (the container does not carry the labels compose expects), and the new container mounting the old one's anonymous volume (`volumes: [\"/cache\"]`).", r.composeVers[0])
	w("")
	w("| image | method | drift: compose would recreate | anonymous volume kept |")
	w("|---|---|---|---|")
	for _, size := range r.sizes {
		for _, m := range r.methods {
			s := r.samples[size][m.name]
			drift, kept := 0, 0
			for _, x := range s {
				if x.drift {
					drift++
				}
				if x.volKept {
					kept++
				}
			}
			w("| %s | %s | %d of %d | %d of %d |", size, m.name, drift, len(s), kept, len(s))
		}
	}
	w("")
}

// watchtowerRatios compares berth's push → answering with the Watchtower fork's.
func (r *report) watchtowerRatios(w func(string, ...any)) {
	wt := "watchtower " + watchtowerVersion
	lines := 0
	for _, size := range r.sizes {
		ref := r.samples[size][wt]
		if len(ref) == 0 {
			continue
		}
		refLat := field(ref, func(s sample) float64 { return ms(s.latency) }).med
		refGap := field(ref, func(s sample) float64 { return ms(s.gap) }).med
		for _, m := range r.methods {
			if !m.berth {
				continue
			}
			if lines == 0 {
				w("Against the Watchtower fork %s (berth ÷ Watchtower, medians):", watchtowerVersion)
				w("")
			}
			lines++
			s := r.samples[size][m.name]
			w("- %s image, %s: push → answering %s, longest gap %s", size, m.name,
				ratio(field(s, func(s sample) float64 { return ms(s.latency) }).med, refLat),
				ratio(field(s, func(s sample) float64 { return ms(s.gap) }).med, refGap))
		}
	}
	if lines > 0 {
		w("")
	}
}

// floorLine sets berth's stop-first push → answering against the sum of the raw calls a
// stop-first replacement is made of.
func (r *report) floorLine(w func(string, ...any)) {
	sum := 0.0
	for _, k := range []string{"ImagePull", "ContainerCreate", "ContainerStop", "ContainerStart"} {
		var v []float64
		for _, d := range r.floor[k] {
			v = append(v, ms(d))
		}
		sum += statOf(v).med
	}
	s := r.samples["small"]["berth stop-first"]
	if len(s) == 0 || sum == 0 {
		return
	}
	lat := field(s, func(s sample) float64 { return ms(s.latency) }).med
	w("Engine floor of a stop-first replacement (pull + create + stop + start, medians): %.0f ms; berth stop-first, small image: push → new version answers %.0f ms, %+.0f %% above it. That figure also holds what no deployer controls and the floor leaves out: the webhook's trip, the new process starting to answer after its start, the prober's sight of it (the Watchtower fork and compose pay it too).", sum, lat, (lat/sum-1)*100)
	w("")
	for _, order := range []string{"stop-first", "start-first"} {
		o := r.own[order]
		if len(o) == 0 {
			continue
		}
		span := field(o, func(d deploySplit) float64 { return ms(d.span) })
		engine := field(o, func(d deploySplit) float64 { return ms(d.engine) })
		own := field(o, func(d deploySplit) float64 { return ms(d.span - d.engine) })
		w("berth %s, from its own deploy records (%d deploys, every image size): deploy start → replacement started %.0f ms, of which its engine calls %.0f ms and berth's own work between them %.1f ms (%.1f–%.1f), **%.1f %% above its engine calls** (target ≤ +10 %%).",
			order, len(o), span.med, engine.med, own.med, own.lo, own.hi, own.med/engine.med*100)
		w("")
	}
}

// deploySplit is one deploy's path to its replacement (deploy start → the step before the
// health check ended) and the part of it spent in engine calls; the rest is berth's own work.
type deploySplit struct{ span, engine time.Duration }

// ownTimes reads berth's deploy records (its history in stateDir) and splits each deployed
// one's path to its replacement into the engine's calls and berth's own work, by order.
func ownTimes(stateDir string) (map[string][]deploySplit, error) {
	h, err := deployer.OpenHistory(stateDir, 0)
	if err != nil {
		return nil, err
	}
	out := map[string][]deploySplit{}
	for _, rec := range h.Records(0) {
		if rec.Outcome != deployer.OutcomeDeployed {
			continue
		}
		i := slices.IndexFunc(rec.Steps, func(s deployer.Step) bool { return s.Name == "health" })
		if i < 1 {
			continue
		}
		path := rec.Steps[:i]
		order := "start-first"
		if slices.ContainsFunc(path, func(s deployer.Step) bool { return s.Name == "stop" }) {
			order = "stop-first"
		}
		var engine time.Duration
		for _, s := range path {
			engine += s.Took
		}
		last := path[len(path)-1]
		span := last.At.Add(last.Took).Sub(rec.Started)
		out[order] = append(out[order], deploySplit{span: span, engine: engine})
	}
	return out, nil
}

// floorPull pushes a fresh version for the floor's round, drops the engine's copy and times
// the pull of its Hub-style name (through the engine's mirror, as the deploys pull).
func floorPull(ctx context.Context, h *harness, p *project, out map[string][]time.Duration) (string, error) {
	tag := p.tag + "-floor"
	ref := registry() + "/acme/web:" + tag
	if err := buildImage(ctx, h.eng, ref, "", map[string][]byte{"Dockerfile": []byte(webDockerfile("floor-"+randHex(4), p.layers, p.layerMB))}); err != nil {
		return "", err
	}
	if err := pushImage(ctx, h.eng, ref); err != nil {
		return "", err
	}
	removeImage(ctx, h.eng, ref)
	image := "acme/web:" + tag
	t := time.Now()
	res, err := h.eng.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = deployertest.Drain(res)
	}
	if err != nil {
		return "", fmt.Errorf("engine floor: pull: %w", err)
	}
	out["ImagePull"] = append(out["ImagePull"], time.Since(t))
	h.cleanups = append(h.cleanups, func() { removeImage(context.Background(), h.eng, image) })
	return image, nil
}
