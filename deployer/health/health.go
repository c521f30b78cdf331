// Package health is the health wait of a rollout: how long a new (or restored) container has
// to prove itself healthy, read from the service's labels, and the wait itself. It imports
// nothing of the deployer; the one engine call it makes is Engine.
package health

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Service labels that tune the health wait for one service.
const (
	LabelTimeout = "berth.health-timeout" // how long a new container has to become healthy, e.g. 90s
	LabelSettle  = "berth.health-settle"  // how long one without a healthcheck must keep running, e.g. 10s
)

// Defaults of the health wait, used when the deployer's Options leave them zero.
const (
	DefaultTimeout = 60 * time.Second
	DefaultSettle  = 5 * time.Second
)

// Engine is what the health wait asks of the Docker Engine; *client.Client satisfies it.
type Engine interface {
	ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error)
}

// Policy is how long the health wait waits for one service.
type Policy struct {
	Timeout time.Duration // the whole wait
	Settle  time.Duration // running without a restart for this long counts as healthy, without a healthcheck
}

// For reads the service's labels over the configured defaults.
func For(def Policy, service string, labels types.Labels) (Policy, error) {
	p := def
	for label, dst := range map[string]*time.Duration{LabelTimeout: &p.Timeout, LabelSettle: &p.Settle} {
		v, ok := labels[label]
		if !ok {
			continue
		}
		dur, err := time.ParseDuration(v)
		if err != nil || dur <= 0 {
			return Policy{}, fault.Errorf(fault.Invalid, "service %s: label %s=%q is not a positive duration such as 90s", service, label, v)
		}
		*dst = dur
	}
	if p.Settle > p.Timeout {
		p.Settle = p.Timeout
	}
	return p, nil
}

// Wait returns nil once the container reports healthy (if it has a healthcheck) or has kept
// running, without a restart, for the settle period (if not). An exit, a restart, an unhealthy
// report or the timeout is an error that says which; with exitOK (a one-shot service) an exit
// with code 0 passes. name is the container as the error should call it.
func Wait(ctx context.Context, eng Engine, id, name string, p Policy, exitOK bool) error {
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "not started"
	for {
		res, err := eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
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
			case time.Since(start) >= p.Settle:
				return nil
			default:
				last = "running, settling"
			}
		}
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == context.DeadlineExceeded || ctx.Err() == context.DeadlineExceeded {
				return fault.Errorf(fault.Conflict, "%s did not become healthy within %s (last: %s); raise label %s if it needs longer",
					name, p.Timeout, last, LabelTimeout)
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

// unavailable marks an engine failure as retryable, unless the deploy was cancelled.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: what + ": " + err.Error(), Err: err}
}
