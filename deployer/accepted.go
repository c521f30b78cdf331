package deployer

import (
	"context"
	"encoding/json"
	"errors"

	"github.com/berth-dev/berth/deployer/state"
)

// A 202 is a promise: Deploy records the pushes it accepts (state.Accepted, fsynced in
// STATE_DIR) before it returns, each service's deploy marks its push done when it ends, and
// Resume, at start, queues again what a crash left owed.

// accept records t's pushes before the handler answers 202. A failed write is logged, not
// returned: refusing the push would lose it for certain (Docker Hub does not redeliver),
// deploying it loses it only if berth crashes first.
func (d *Deployer) accept(t Ticket, req Request) {
	if d.accepted == nil || len(t.Services) == 0 {
		return
	}
	push, err := json.Marshal(req)
	if err != nil {
		d.log.Error("accepted push not recorded; a crash before it deploys loses it", "deploy", t.ID, "err", err)
		return
	}
	pushes := make([]state.AcceptedPush, len(t.Services))
	for i, s := range t.Services {
		pushes[i] = state.AcceptedPush{ID: t.ID, Service: s, PushedAt: req.PushedAt, Push: push}
	}
	if err := d.accepted.Add(pushes); err != nil {
		d.log.Error("accepted push not recorded; a crash before it deploys loses it", "deploy", t.ID, "err", err)
	}
}

// settle marks j's push done once its deploy ended, unless shutdown interrupted it: then it
// stays owed and the next start deploys it.
func (d *Deployer) settle(ctx context.Context, j job, outcome string, err error) {
	if d.accepted == nil || j.key == "" || j.dependent {
		return
	}
	if outcome == OutcomeFailed && (ctx.Err() != nil || d.shutdown.Err() != nil && errors.Is(err, context.Canceled)) {
		d.log.Warn("deploy interrupted by shutdown; berth deploys the push at its next start", "deploy", j.id, "service", j.key)
		return
	}
	if err := d.accepted.Done(j.id, j.key); err != nil {
		d.log.Warn("deploy's end not recorded; the next start tries the push again", "deploy", j.id, "service", j.key, "err", err)
	}
}

// openAccepted opens STATE_DIR's accepted-push log; when it cannot be read berth logs why and
// keeps its promises in memory instead.
func (d *Deployer) openAccepted() *state.Accepted {
	a, err := d.state.Accepted()
	if err == nil {
		return a
	}
	d.log.Error("accepted pushes cannot be read; pushes accepted from now on do not survive a crash", "err", err)
	a, _ = state.New("").Accepted()
	return a
}

// Resume queues, per service, the newest accepted push a crash (or a shutdown) left neither
// deployed nor superseded, under its original deploy id. A push no service matches any more is
// settled; one that cannot be matched now (the engine is down) stays owed. Run it at start,
// after Reconcile.
func (d *Deployer) Resume(ctx context.Context) error {
	if d.accepted == nil {
		return nil
	}
	var errs []error
	for _, p := range d.accepted.Pending() {
		var req Request
		if err := json.Unmarshal(p.Push, &req); err != nil {
			d.log.Error("accepted push unreadable; dropped", "deploy", p.ID, "service", p.Service, "err", err)
			_ = d.accepted.Done(p.ID, p.Service)
			continue
		}
		t, jobs, err := d.match(ctx, req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		found := false
		for i, s := range t.Services {
			if s != p.Service {
				continue
			}
			found = true
			jobs[i].id, jobs[i].key = p.ID, s
			d.log.Info("resuming a push accepted before berth stopped", "deploy", p.ID, "service", s, "image", t.Image)
			d.submit(Ticket{ID: p.ID, Image: t.Image, Services: []string{s}}, jobs[i:i+1])
		}
		if !found {
			d.log.Warn("accepted push no longer matches its service; dropped", "deploy", p.ID, "service", p.Service, "image", t.Image)
			_ = d.accepted.Done(p.ID, p.Service)
		}
	}
	return errors.Join(errs...)
}

// Close releases the accepted-push log.
func (d *Deployer) Close() error {
	if d.accepted == nil {
		return nil
	}
	return d.accepted.Close()
}
