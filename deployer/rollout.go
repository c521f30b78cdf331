package deployer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Service labels that tune the health gate for one service.
const (
	LabelHealthTimeout = "berth.health-timeout" // how long a new container has to become healthy, e.g. 90s
	LabelHealthSettle  = "berth.health-settle"  // how long one without a healthcheck must keep running, e.g. 10s
)

// Defaults of the rollout settings, used when Options leave them zero.
const (
	DefaultHealthTimeout = 60 * time.Second
	DefaultHealthSettle  = 5 * time.Second
	DefaultKeepImages    = 2
	DefaultRetryFor      = 10 * time.Minute
)

// gate is how long the health gate waits for one service.
type gate struct {
	timeout time.Duration // the whole wait
	settle  time.Duration // running without a restart for this long counts as healthy, without a healthcheck
}

// gateFor reads the service's labels over the configured defaults.
func (d *Deployer) gateFor(s types.ServiceConfig) (gate, error) {
	g := gate{timeout: d.healthTimeout, settle: d.healthSettle}
	for label, dst := range map[string]*time.Duration{LabelHealthTimeout: &g.timeout, LabelHealthSettle: &g.settle} {
		v, ok := s.Labels[label]
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			return gate{}, fault.Errorf(fault.Invalid, "service %s: label %s=%q is not a positive duration such as 90s", s.Name, label, v)
		}
		*dst = dur
	}
	if g.settle > g.timeout {
		g.settle = g.timeout
	}
	return g, nil
}

// waitHealthy is the health gate: it returns nil once the container reports healthy (if it has
// a healthcheck) or has kept running, without a restart, for the settle period (if not). An
// exit, a restart, an unhealthy report or the timeout is an error that says which; with
// exitOK (a one-shot service) an exit with code 0 passes.
func (d *Deployer) waitHealthy(ctx context.Context, id, name string, g gate, exitOK bool) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "not started"
	for {
		res, err := d.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
		if err != nil && ctx.Err() == nil {
			return unavailable("inspect "+name, err)
		}
		if err == nil {
			c := res.Container
			st := c.State
			switch {
			case st == nil:
				last = "no state"
			case exitOK && st.Status == container.StateExited && st.ExitCode == 0:
				return nil
			case c.RestartCount > 0 || st.Restarting:
				return fault.Errorf(fault.Conflict, "%s restarted (exit code %d): crash loop", name, st.ExitCode)
			case !st.Running:
				return fault.Errorf(fault.Conflict, "%s stopped with exit code %d%s", name, st.ExitCode, logHint(st))
			case st.Health != nil && st.Health.Status == container.Unhealthy:
				return fault.Errorf(fault.Conflict, "%s is unhealthy: %s", name, lastProbe(st.Health))
			case st.Health != nil && st.Health.Status == container.Healthy:
				return nil
			case st.Health != nil:
				last = "health " + string(st.Health.Status)
			case time.Since(start) >= g.settle:
				return nil
			default:
				last = "running, settling"
			}
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == context.DeadlineExceeded || ctx.Err() == context.DeadlineExceeded {
				return fault.Errorf(fault.Conflict, "%s did not become healthy within %s (last: %s); raise label %s if it needs longer",
					name, g.timeout, last, LabelHealthTimeout)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func logHint(st *container.State) string {
	if st.Error != "" {
		return ": " + st.Error
	}
	return ""
}

func lastProbe(h *container.Health) string {
	if len(h.Log) == 0 {
		return "no probe output"
	}
	return strings.TrimSpace(h.Log[len(h.Log)-1].Output)
}

// StartFirstProblem says why a service that asks for deploy.update_config.order: start-first
// cannot have it, or "" when it can (or does not ask). Two containers of one replica cannot
// run side by side when they would need the same fixed host port or the same container_name;
// berth then stops the old one first, as compose does, and `berth check` reports this.
func StartFirstProblem(s types.ServiceConfig) string {
	if !wantsStartFirst(s) {
		return ""
	}
	if s.ContainerName != "" {
		return fmt.Sprintf("service %s sets container_name %s, which two containers cannot share; start-first falls back to stop-first", s.Name, s.ContainerName)
	}
	for _, p := range s.Ports {
		if p.Published != "" && p.Published != "0" {
			return fmt.Sprintf("service %s publishes fixed host port %s, which two containers cannot bind; start-first falls back to stop-first "+
				"(publish an ephemeral port or put a reverse proxy in front)", s.Name, p.Published)
		}
	}
	return ""
}

func wantsStartFirst(s types.ServiceConfig) bool {
	return s.Deploy != nil && s.Deploy.UpdateConfig != nil && s.Deploy.UpdateConfig.Order == "start-first"
}

// upToDate says whether every replica of the service already runs imageID with the config
// hash berth would give it: a redelivered push then changes nothing.
func upToDate(existing []container.Summary, replicas int, imageID, hash string) bool {
	if len(existing) != replicas {
		return false
	}
	for _, c := range existing {
		if c.ImageID != imageID || c.Labels[labelConfigHash] != hash || c.State != container.StateRunning {
			return false
		}
	}
	return true
}
