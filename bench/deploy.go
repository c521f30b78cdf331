package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// method is one way of getting a pushed version running.
type method struct {
	name       string
	berth      bool
	startFirst bool
	watchtower bool   // the Watchtower fork, triggered through its HTTP API
	compose    string // compose CLI binary, for the CLI methods
}

// project is one benchmarked compose project: a web service on a fixed tag, and the prober
// on the same network.
type project struct {
	name, dir, tag  string
	layers, layerMB int
	probeURL        string
	composeFile     func(startFirst bool) string
}

// sample is one measured deploy.
type sample struct {
	latency  time.Duration // push in the registry -> first answer with the new version
	gap      time.Duration // longest time between two successful probes
	failures int
	requests int
	trigger  time.Duration // the CLI's own run time, the webhook's answer time, or Watchtower's API call
	errors   map[string]int
	drift    bool // afterwards `compose up -d --dry-run web` would recreate the service
	volKept  bool // the new container mounts the old one's anonymous volume
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newProject writes the compose project, pushes its first version and starts it with the
// reference compose CLI.
func newProject(ctx context.Context, h *harness, size string, layers, layerMB int) (*project, error) {
	name := "bench" + size + randHex(4)
	p := &project{name: name, dir: filepath.Join(h.work, name), tag: "bench-" + size + "-" + randHex(4), layers: layers, layerMB: layerMB}
	// The engine gives the new container the IP the old one had; a client whose neighbour
	// cache still maps it to the old MAC sends into the void for about 5 s (the kernel's
	// delay_first_probe_time plus unicast probes), whichever tool recreated the container.
	// And the engine's DNS names a new container as soon as its endpoint joins, a moment
	// before the container answers ARP: a client that asks at once waits for the kernel's
	// ARP retransmit (1 s) — 20 timed-out probes and a 0.2–1.2 s gap in every method.
	// The prober's cache is made short-lived and its ARP retries fast so it measures the
	// service, not its own neighbour table.
	p.composeFile = func(startFirst bool) string {
		update := ""
		if startFirst {
			update = "    deploy:\n      update_config:\n        order: start-first\n"
		}
		return fmt.Sprintf(`name: %s
services:
  web:
    image: acme/web:%s
    init: true
    volumes: ["/cache"] # an anonymous volume: a faithful recreate keeps it
    labels: {com.centurylinklabs.watchtower.enable: "true", com.centurylinklabs.watchtower.scope: %s}
%s  probe:
    image: %s
    pull_policy: never
    environment: {TARGET: "http://web/"}
    ports: ["127.0.0.1::8081"]
    sysctls: # forget a neighbour's MAC fast: see the comment above
      net.ipv4.neigh.eth0.delay_first_probe_time: "0"
      net.ipv4.neigh.eth0.ucast_solicit: "0"
      net.ipv4.neigh.eth0.base_reachable_time_ms: "100"
      net.ipv4.neigh.eth0.retrans_time_ms: "10"
`, name, p.tag, watchtowerScope, update, h.proberImage)
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return nil, err
	}
	if err := p.write(false); err != nil {
		return nil, err
	}
	if err := p.push(ctx, h.eng, "initial-"+randHex(4)); err != nil {
		return nil, err
	}
	if out, err := p.compose(ctx, h.composeBins[0], "up", "-d", "--quiet-pull"); err != nil {
		return nil, fmt.Errorf("compose up: %w\n%s", err, out)
	}
	h.cleanups = append(h.cleanups, func() {
		_, _ = p.compose(context.Background(), h.composeBins[0], "down", "-v", "-t", "1")
		removeImage(context.Background(), h.eng, "acme/web:"+p.tag)
	})
	port, err := publishedPort(ctx, h.eng, name+"-probe-1", 8081)
	if err != nil {
		return nil, err
	}
	p.probeURL = "http://127.0.0.1:" + port
	for i := 0; ; i++ { // the prober listens a moment after its container starts
		if resp, err := http.Get(p.probeURL + "/status"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 200 {
			return nil, fmt.Errorf("prober of %s does not answer", name)
		}
		time.Sleep(25 * time.Millisecond)
	}
	return p, nil
}

func (p *project) write(startFirst bool) error {
	return os.WriteFile(filepath.Join(p.dir, "compose.yaml"), []byte(p.composeFile(startFirst)), 0o644)
}

func (p *project) compose(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = p.dir
	return cmd.CombinedOutput()
}

// push builds the version answering body and pushes it under the project's tag, then drops the
// engine's local copy so the deploy pulls every new layer as it would from a remote registry.
func (p *project) push(ctx context.Context, eng *client.Client, body string) error {
	ref := registry() + "/acme/web:" + p.tag
	if err := buildImage(ctx, eng, ref, "", map[string][]byte{"Dockerfile": []byte(webDockerfile(body, p.layers, p.layerMB))}); err != nil {
		return err
	}
	if err := pushImage(ctx, eng, ref); err != nil {
		return err
	}
	removeImage(ctx, eng, ref)
	return nil
}

type probeResult struct {
	Requests     int              `json:"requests"`
	Failures     int              `json:"failures"`
	LongestGapNS int64            `json:"longest_gap_ns"`
	FirstSeen    map[string]int64 `json:"first_seen"`
	Errors       map[string]int   `json:"errors"`
}

func (p *project) probe(verb, path string) (probeResult, error) {
	var r probeResult
	req, _ := http.NewRequest(verb, p.probeURL+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNoContent {
		return r, nil
	}
	if resp.StatusCode != http.StatusOK {
		return r, fmt.Errorf("prober %s %s: %s", verb, path, resp.Status)
	}
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

// deployOnce pushes a new version, triggers m and measures until the new version answers and
// the deploy has finished.
func (p *project) deployOnce(ctx context.Context, h *harness, m method, round int) (sample, error) {
	var s sample
	body := fmt.Sprintf("%s-r%d-%s", m.name, round, randHex(4))
	if err := p.write(m.startFirst); err != nil {
		return s, err
	}
	if err := p.push(ctx, h.eng, body); err != nil {
		return s, err
	}
	if _, err := p.probe(http.MethodPost, "/start?max=5m"); err != nil {
		return s, err
	}
	volBefore := p.anonVolume(ctx, h)
	time.Sleep(300 * time.Millisecond) // a baseline of answers before the trigger

	doneBefore, failedBefore := 0, 0
	if m.berth {
		doneBefore, failedBefore = h.berth.count("msg=\"deploy done\""), h.berth.count("msg=\"deploy failed\"")
	}
	finished := make(chan error, 1)
	t0 := time.Now()
	if m.berth {
		payload := strings.Replace(h.hubPayload, `"tag": "1.4.2"`, `"tag": "`+p.tag+`"`, 1)
		payload = strings.Replace(payload, `"pushed_at": 1795183407`, fmt.Sprintf(`"pushed_at": %d`, time.Now().Unix()), 1)
		resp, err := http.Post(h.berth.url+"/webhook?secret="+benchSecret, "application/json", strings.NewReader(payload))
		if err != nil {
			return s, err
		}
		resp.Body.Close()
		s.trigger = time.Since(t0)
		if resp.StatusCode != http.StatusAccepted {
			return s, fmt.Errorf("webhook answered %s", resp.Status)
		}
		go func() {
			for end := time.Now().Add(5 * time.Minute); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
				if h.berth.count("msg=\"deploy failed\"") > failedBefore {
					finished <- fmt.Errorf("berth: deploy failed; see %s", h.berth.logPath)
					return
				}
				if h.berth.count("msg=\"deploy done\"") > doneBefore {
					finished <- nil
					return
				}
			}
			finished <- fmt.Errorf("berth did not finish the deploy in 5 min")
		}()
	} else if m.watchtower {
		go func() {
			err := h.watchtower.update(ctx)
			s.trigger = time.Since(t0)
			finished <- err
		}()
	} else {
		go func() {
			out, err := p.compose(ctx, m.compose, "pull", "-q", "web")
			if err == nil {
				var more []byte
				more, err = p.compose(ctx, m.compose, "up", "-d", "web")
				out = append(out, more...)
			}
			s.trigger = time.Since(t0)
			if err != nil {
				err = fmt.Errorf("%s pull && up -d: %w\n%s", m.name, err, bytes.TrimSpace(out))
			}
			finished <- err
		}()
	}
	var seen int64
	for end := time.Now().Add(5 * time.Minute); seen == 0 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		r, err := p.probe(http.MethodGet, "/status")
		if err != nil {
			return s, err
		}
		seen = r.FirstSeen[body]
	}
	if err := <-finished; err != nil {
		return s, err
	}
	time.Sleep(300 * time.Millisecond) // answers after the deploy, so a gap at its very end counts
	r, err := p.probe(http.MethodPost, "/stop")
	if err != nil {
		return s, err
	}
	if seen == 0 {
		return s, fmt.Errorf("%s: the new version never answered", m.name)
	}
	s.latency = time.Unix(0, seen).Sub(t0)
	s.gap = time.Duration(r.LongestGapNS)
	s.failures, s.requests, s.errors = r.Failures, r.Requests, r.Errors
	s.volKept = volBefore != "" && p.anonVolume(ctx, h) == volBefore
	out, err := p.compose(ctx, h.composeBins[0], "up", "-d", "--dry-run", "web")
	if err != nil {
		return s, fmt.Errorf("compose up -d --dry-run: %w\n%s", err, out)
	}
	s.drift = bytes.Contains(out, []byte("Recreate"))
	return s, nil
}

// anonVolume is the name of the volume the web container mounts at /cache, or "".
func (p *project) anonVolume(ctx context.Context, h *harness) string {
	res, err := h.eng.ContainerInspect(ctx, p.name+"-web-1", client.ContainerInspectOptions{})
	if err != nil {
		return ""
	}
	for _, m := range res.Container.Mounts {
		if m.Destination == "/cache" {
			return m.Name
		}
	}
	return ""
}
