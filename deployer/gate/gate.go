// Package gate is the pre-deploy gate: a command in a throwaway container, or a policy endpoint,
// asked about a deploy after the pull and before anything is stopped; a veto leaves the service
// as it was. It imports nothing of the deployer; the engine calls it makes are Engine.
package gate

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/cmdline"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
)

// Service labels that set a service's own pre-deploy gate, overriding the GATE_* defaults.
const (
	Label        = "berth.gate"         // "off" disables the default gate for this service
	LabelImage   = "berth.gate.image"   // run a throwaway container of this image
	LabelCommand = "berth.gate.command" // its command: a shell string or a JSON array
	LabelURL     = "berth.gate.url"     // or POST the deploy to this policy endpoint
	LabelTimeout = "berth.gate.timeout" // how long the gate may take (Go duration)
	LabelNetwork = "berth.gate.network" // the gate container's network; none by default
)

// DefaultTimeout bounds a gate that sets no timeout: a hanging gate vetoes, it never
// holds the service's queue for longer.
const DefaultTimeout = 5 * time.Minute

// outputLines is how many of the gate's last output lines a Record keeps.
const outputLines = 20

// Config is a pre-deploy gate: a command in a throwaway container, or a policy endpoint.
type Config struct {
	Image   string        `json:"image,omitempty"`   // the gate container's image, e.g. a scanner
	Command string        `json:"command,omitempty"` // shell string or JSON exec array; "" runs the image's own with the ref as argument
	URL     string        `json:"url,omitempty"`     // policy endpoint; a non-2xx answer vetoes
	Timeout time.Duration `json:"timeout_ns"`
	Network string        `json:"network,omitempty"` // the gate container's network mode; "none" when empty
	Source  string        `json:"source,omitempty"`  // "env" or "label": where this gate was configured
}

// MarshalJSON shows the URL as ShownURL: the status API lists every service's gate.
func (g Config) MarshalJSON() ([]byte, error) {
	type plain Config
	if g.URL != "" {
		g.URL = ShownURL(g.URL)
	}
	return json.Marshal(plain(g))
}

// Enabled says whether there is a gate at all.
func (g Config) Enabled() bool { return g.Image != "" || g.URL != "" }

// Validate rejects a gate that could not run, naming what to fix.
func (g Config) Validate() error {
	switch {
	case g.Image != "" && g.URL != "":
		return fault.Errorf(fault.Invalid, "gate has both an image (%s) and a URL (%s); set one", g.Image, ShownURL(g.URL))
	case g.Command != "" && g.Image == "":
		return fault.Errorf(fault.Invalid, "gate command %q needs a gate image to run in", g.Command)
	case g.Timeout < 0:
		return fault.Errorf(fault.Invalid, "gate timeout %s is negative", g.Timeout)
	case g.URL != "" && !strings.HasPrefix(g.URL, "http://") && !strings.HasPrefix(g.URL, "https://"):
		return fault.Errorf(fault.Invalid, "gate URL %q must start with http:// or https://", ShownURL(g.URL))
	}
	if _, err := cmdline.Parse(g.Command); err != nil {
		return fault.Errorf(fault.Invalid, "gate command: %v", err)
	}
	return nil
}

// For is the pre-deploy gate of a service: its berth.gate.* labels over the default (env) gate.
func For(def Config, labels types.Labels) (Config, error) {
	if v := labels[Label]; v == "off" || v == "false" {
		return Config{}, nil
	} else if v != "" {
		return Config{}, fault.Errorf(fault.Invalid, "label %s=%q: only \"off\" is understood", Label, v)
	}
	g := def
	if def.Enabled() {
		g.Source = "env"
	}
	if labels[LabelImage] != "" || labels[LabelURL] != "" {
		g = Config{Image: labels[LabelImage], URL: labels[LabelURL], Command: labels[LabelCommand],
			Timeout: def.Timeout, Network: def.Network, Source: "label"}
	} else if labels[LabelCommand] != "" {
		g.Command = labels[LabelCommand]
	}
	if v := labels[LabelTimeout]; v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return Config{}, fault.Errorf(fault.Invalid, "label %s=%q is not a positive duration such as 2m", LabelTimeout, v)
		}
		g.Timeout = t
	}
	if v := labels[LabelNetwork]; v != "" {
		g.Network = v
	}
	if g.Timeout == 0 {
		g.Timeout = DefaultTimeout
	}
	if !g.Enabled() {
		return Config{}, nil
	}
	return g, g.Validate()
}

// Result is what the pre-deploy gate said, kept in the deploy's Record.
type Result struct {
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

// Veto is the error of a deploy its gate refused: nothing was stopped.
type Veto struct{ Result Result }

func (v *Veto) Error() string {
	msg := fmt.Sprintf("rejected by gate %s: %s", v.Result.Target, v.Result.Reason)
	if n := len(v.Result.Output); n > 0 {
		msg += "; last output: " + v.Result.Output[n-1]
	}
	return msg
}

// Request is what a gate learns about the deploy: the HTTP gate's JSON body, and the
// container gate's BERTH_* environment.
type Request struct {
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

func (r Request) env() []string {
	return []string{"BERTH_IMAGE=" + r.Image, "BERTH_IMAGE_ID=" + r.ImageID, "BERTH_PROJECT=" + r.Project,
		"BERTH_SERVICE=" + r.Service, "BERTH_REPOSITORY=" + r.Repository, "BERTH_TAG=" + r.Tag, "BERTH_DIGEST=" + r.Digest}
}

// ShownURL is a gate URL as logs, records and the API show it: scheme and host, never the
// user, path or query, where a policy endpoint's token would be.
func ShownURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "[redacted url]"
	}
	if u.User == nil && (u.Path == "" || u.Path == "/") && u.RawQuery == "" {
		return u.Scheme + "://" + u.Host
	}
	return u.Scheme + "://" + u.Host + "/…"
}
