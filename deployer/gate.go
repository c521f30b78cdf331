package deployer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Service labels that set a service's own pre-deploy gate, overriding the GATE_* defaults.
const (
	LabelGate        = "berth.gate"         // "off" disables the default gate for this service
	LabelGateImage   = "berth.gate.image"   // run a throwaway container of this image
	LabelGateCommand = "berth.gate.command" // its command: a shell string or a JSON array
	LabelGateURL     = "berth.gate.url"     // or POST the deploy to this policy endpoint
	LabelGateTimeout = "berth.gate.timeout" // how long the gate may take (Go duration)
	LabelGateNetwork = "berth.gate.network" // the gate container's network; none by default
)

// DefaultGateTimeout bounds a gate that sets no timeout: a hanging gate vetoes, it never
// holds the service's queue for longer.
const DefaultGateTimeout = 5 * time.Minute

// gateOutputLines is how many of the gate's last output lines a Record keeps.
const gateOutputLines = 20

// GateConfig is a pre-deploy gate: a command in a throwaway container, or a policy endpoint.
type GateConfig struct {
	Image   string        `json:"image,omitempty"`   // the gate container's image, e.g. a scanner
	Command string        `json:"command,omitempty"` // shell string or JSON exec array; "" runs the image's own with the ref as argument
	URL     string        `json:"url,omitempty"`     // policy endpoint; a non-2xx answer vetoes
	Timeout time.Duration `json:"timeout_ns"`
	Network string        `json:"network,omitempty"` // the gate container's network mode; "none" when empty
	Source  string        `json:"source,omitempty"`  // "env" or "label": where this gate was configured
}

// Enabled says whether there is a gate at all.
func (g GateConfig) Enabled() bool { return g.Image != "" || g.URL != "" }

// Validate rejects a gate that could not run, naming what to fix.
func (g GateConfig) Validate() error {
	switch {
	case g.Image != "" && g.URL != "":
		return fault.Errorf(fault.Invalid, "gate has both an image (%s) and a URL (%s); set one", g.Image, g.URL)
	case g.Command != "" && g.Image == "":
		return fault.Errorf(fault.Invalid, "gate command %q needs a gate image to run in", g.Command)
	case g.Timeout < 0:
		return fault.Errorf(fault.Invalid, "gate timeout %s is negative", g.Timeout)
	case g.URL != "" && !strings.HasPrefix(g.URL, "http://") && !strings.HasPrefix(g.URL, "https://"):
		return fault.Errorf(fault.Invalid, "gate URL %q must start with http:// or https://", g.URL)
	}
	if _, err := parseCommand(g.Command); err != nil {
		return fault.Errorf(fault.Invalid, "gate command: %v", err)
	}
	return nil
}

// deployGateFor is the pre-deploy gate of a service: its berth.gate.* labels over the default (env) gate.
func deployGateFor(def GateConfig, labels types.Labels) (GateConfig, error) {
	if v := labels[LabelGate]; v == "off" || v == "false" {
		return GateConfig{}, nil
	} else if v != "" {
		return GateConfig{}, fault.Errorf(fault.Invalid, "label %s=%q: only \"off\" is understood", LabelGate, v)
	}
	g := def
	if def.Enabled() {
		g.Source = "env"
	}
	if labels[LabelGateImage] != "" || labels[LabelGateURL] != "" {
		g = GateConfig{Image: labels[LabelGateImage], URL: labels[LabelGateURL], Command: labels[LabelGateCommand],
			Timeout: def.Timeout, Network: def.Network, Source: "label"}
	} else if labels[LabelGateCommand] != "" {
		g.Command = labels[LabelGateCommand]
	}
	if v := labels[LabelGateTimeout]; v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return GateConfig{}, fault.Errorf(fault.Invalid, "label %s=%q is not a positive duration such as 2m", LabelGateTimeout, v)
		}
		g.Timeout = t
	}
	if v := labels[LabelGateNetwork]; v != "" {
		g.Network = v
	}
	if g.Timeout == 0 {
		g.Timeout = DefaultGateTimeout
	}
	if !g.Enabled() {
		return GateConfig{}, nil
	}
	return g, g.Validate()
}

// parseCommand reads a hook or gate command: a JSON array is the exec form, anything else a
// shell string run with sh -c. Empty is nil.
func parseCommand(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
			return nil, fmt.Errorf("%q starts with [ but is not a non-empty JSON array of strings", s)
		}
		return argv, nil
	}
	return []string{"sh", "-c", s}, nil
}

// GateResult is what the pre-deploy gate said, kept in the deploy's Record.
type GateResult struct {
	Kind     string        `json:"kind"`   // "container" or "http"
	Target   string        `json:"target"` // the gate image or URL
	Passed   bool          `json:"passed"`
	ExitCode int           `json:"exit_code,omitempty"` // container gates
	Status   int           `json:"status,omitempty"`    // HTTP gates
	TimedOut bool          `json:"timed_out,omitempty"`
	Reason   string        `json:"reason,omitempty"` // why it vetoed
	Output   []string      `json:"output,omitempty"` // the gate's last output lines
	Took     time.Duration `json:"took_ns"`
}

// GateVeto is the error of a deploy its gate refused: nothing was stopped.
type GateVeto struct{ Result GateResult }

func (v *GateVeto) Error() string {
	msg := fmt.Sprintf("rejected by gate %s: %s", v.Result.Target, v.Result.Reason)
	if n := len(v.Result.Output); n > 0 {
		msg += "; last output: " + v.Result.Output[n-1]
	}
	return msg
}

// gateRequest is what a gate learns about the deploy: the HTTP gate's JSON body, and the
// container gate's BERTH_* environment.
type gateRequest struct {
	Project    string            `json:"project"`
	Service    string            `json:"service"`
	Image      string            `json:"image"`    // the reference the service runs, now pulled
	ImageID    string            `json:"image_id"` // the pulled image's ID
	Repository string            `json:"repository"`
	Tag        string            `json:"tag"`
	Digest     string            `json:"digest,omitempty"`
	Source     string            `json:"source"`
	Pusher     string            `json:"pusher,omitempty"`
	Labels     map[string]string `json:"labels"` // the pulled image's labels
}

func (r gateRequest) env() []string {
	return []string{"BERTH_IMAGE=" + r.Image, "BERTH_IMAGE_ID=" + r.ImageID, "BERTH_PROJECT=" + r.Project,
		"BERTH_SERVICE=" + r.Service, "BERTH_REPOSITORY=" + r.Repository, "BERTH_TAG=" + r.Tag, "BERTH_DIGEST=" + r.Digest}
}

// runGate asks the gate about the deploy. A veto (or a gate that cannot run, or times out)
// is a *GateVeto; the result is returned either way for the Record.
func (d *Deployer) runGate(ctx context.Context, g GateConfig, req gateRequest) (GateResult, error) {
	start := time.Now()
	var res GateResult
	if g.URL != "" {
		res = d.httpGate(ctx, g, req)
	} else {
		res = d.containerGate(ctx, g, req)
	}
	res.Took = time.Since(start)
	if errors.Is(ctx.Err(), context.Canceled) {
		return res, ctx.Err()
	}
	if !res.Passed {
		return res, &GateVeto{Result: res}
	}
	return res, nil
}

// httpGate POSTs the deploy to the policy endpoint; only a 2xx answer lets it through, and
// an endpoint that cannot be reached vetoes (a policy nobody can ask is not a yes).
func (d *Deployer) httpGate(ctx context.Context, g GateConfig, req gateRequest) GateResult {
	res := GateResult{Kind: "http", Target: g.URL}
	ctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	body, _ := json.Marshal(req)
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		res.Reason = err.Error()
		return res
	}
	r.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		res.TimedOut = errors.Is(err, context.DeadlineExceeded)
		res.Reason = "policy endpoint: " + err.Error()
		if res.TimedOut {
			res.Reason = fmt.Sprintf("policy endpoint did not answer within %s", g.Timeout)
		}
		return res
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res.Status, res.Output = resp.StatusCode, lastLines(b, gateOutputLines)
	res.Passed = resp.StatusCode >= 200 && resp.StatusCode < 300
	if !res.Passed {
		res.Reason = "policy endpoint answered " + resp.Status
	}
	return res
}

// containerGate runs the gate image once with the deploy in its environment. The container
// is always removed, also when it hangs past its timeout (removing it kills it).
func (d *Deployer) containerGate(ctx context.Context, g GateConfig, req gateRequest) GateResult {
	res := GateResult{Kind: "container", Target: g.Image}
	fail := func(format string, args ...any) GateResult {
		res.Reason = fmt.Sprintf(format, args...)
		return res
	}
	if _, err := d.eng.ImageInspect(ctx, g.Image); cerrdefs.IsNotFound(err) {
		if err := d.pull(ctx, g.Image); err != nil {
			return fail("gate image: %v", err)
		}
	} else if err != nil {
		return fail("gate image %s: %v", g.Image, err)
	}
	cfg := &container.Config{Image: g.Image, Env: req.env(),
		Labels: map[string]string{"berth.gate-for": req.Project + "/" + req.Service}} // finds a leftover, should one survive a crash
	argv, _ := parseCommand(g.Command)
	if argv == nil {
		cfg.Cmd = []string{req.Image} // the image's own entrypoint, given the reference to check
	} else {
		cfg.Entrypoint = argv
	}
	network := g.Network
	if network == "" {
		network = "none"
	}
	created, err := d.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "berth-gate-" + newID(), Config: cfg, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		return fail("create gate container: %v", err)
	}
	defer d.discard(ctx, created.ID)

	waitCtx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	if _, err := d.eng.ContainerStart(waitCtx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fail("start gate container: %v", err)
	}
	// Waiting for "not-running" after the start returns at once for a gate that already exited.
	wait := d.eng.ContainerWait(waitCtx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case r := <-wait.Result:
		res.ExitCode = int(r.StatusCode)
		res.Passed = r.StatusCode == 0
		if !res.Passed {
			res.Reason = "gate exited with code " + strconv.FormatInt(r.StatusCode, 10)
		}
	case err := <-wait.Error:
		if waitCtx.Err() != nil {
			res.TimedOut, res.Reason = true, fmt.Sprintf("gate did not finish within %s; killed", g.Timeout)
		} else {
			res.Reason = "wait for gate container: " + err.Error()
		}
	case <-waitCtx.Done():
		res.TimedOut, res.Reason = true, fmt.Sprintf("gate did not finish within %s; killed", g.Timeout)
	}
	res.Output = d.containerOutput(ctx, created.ID)
	return res
}

// containerOutput is the last lines a container wrote, stdout and stderr together.
func (d *Deployer) containerOutput(ctx context.Context, id string) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rc, err := d.eng.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(gateOutputLines)})
	if err != nil {
		return []string{"(output unavailable: " + err.Error() + ")"}
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 256<<10))
	return lastLines(buf.Bytes(), gateOutputLines)
}

// lastLines keeps the last n non-empty lines of b, each cut to a readable length.
func lastLines(b []byte, n int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			continue
		}
		if len(l) > 512 {
			l = l[:512] + "…"
		}
		out = append(out, l)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
