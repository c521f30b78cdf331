package deployer

import (
	"context"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/watch"
)

// A service labelled berth.window.webhook=true takes webhook pushes only inside its
// maintenance window (berth.window, else WATCH_WINDOW): a push outside waits in the queue,
// owed in STATE_DIR's accepted pushes across a restart, and deploys when the window opens.
// Deploys by hand (berth deploy) and watch mode's own (which wait before they are queued)
// never wait here.

// holdForWindow waits, outside the deploy slot, until j's service's window is open, if its
// webhook pushes follow one; it returns at once otherwise, or when ctx ends. A window label
// berth cannot read is an error: the push is skipped rather than deployed at any time.
func (d *Deployer) holdForWindow(ctx context.Context, j job) error {
	if j.manual || j.dependent || j.swarmService != "" || j.req.Source == "watch" {
		return nil
	}
	p, err := d.projectFor(ctx, j.project) // the index's copy unless its files changed
	if err != nil {
		return nil // the deploy itself reports it
	}
	s, ok := p.Services[j.service]
	if !ok {
		return nil
	}
	var defaults watch.Defaults
	if w := d.Watcher(); w != nil {
		defaults = w.o.Defaults
	}
	until, hold, err := webhookHold(s.Labels, defaults, time.Now())
	if err != nil || !hold {
		return err
	}
	d.log.Info("push waits for the service's maintenance window", "deploy", j.id, "service", j.projectName+"/"+j.service, "until", until)
	unlimited(ctx, func() {
		select {
		case <-ctx.Done():
		case <-time.After(time.Until(until)):
		}
	})
	return nil
}

// webhookHold says until when a webhook push to a service with labels waits at now, if it does.
func webhookHold(labels map[string]string, defaults watch.Defaults, now time.Time) (time.Time, bool, error) {
	if labels[watch.LabelWindowWebhook] == "" {
		return time.Time{}, false, nil
	}
	defaults.Watch = watch.WatchLabelled // the policy's mode does not matter here
	pol, err := watch.ParsePolicy(labels, defaults)
	if err != nil {
		return time.Time{}, false, fault.Errorf(fault.Invalid, "the push was not deployed, since its maintenance window cannot be read: %w; fix the label", err)
	}
	if !pol.WindowWebhook || pol.Window == nil || pol.Window.Contains(now) {
		return time.Time{}, false, nil
	}
	return pol.Window.Next(now), true, nil
}
