package deployer

import (
	"context"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/swarm"
)

// Backends berth can deploy through (BACKEND).
const (
	BackendAuto    = "auto"    // compose projects, plus stack services when the engine is a swarm manager
	BackendCompose = "compose" // compose projects only; swarm services are never touched
	BackendSwarm   = "swarm"   // swarm services only, stack or not; compose projects are not consulted
)

// newSwarm is the swarm backend (deployer/swarm) as this deployer configures it.
func (d *Deployer) newSwarm(eng swarm.Engine, timeout time.Duration) *swarm.Backend {
	return swarm.New(eng, swarm.Options{
		All:     d.backend == BackendSwarm,
		Allowed: d.filter.allows,
		Self:    swarm.Self{Service: d.self.SwarmService, Stack: d.self.Stack, Image: d.self.Image.Name},
		Timeout: timeout,
		// The digest lookup is a registry request like image inspection: same bound, same shutdown.
		RegistryTimeout: d.regTimeout,
		Shutdown:        d.shutdown,
		Logger:          d.log,
	})
}

// Warm asks the engine now what the first push would otherwise wait for (whether it is a swarm
// manager, and the project index: discovery and every project loaded), so that push is
// answered by lookups alone. Failures are left for the push to meet and report.
func (d *Deployer) Warm(ctx context.Context) {
	if d.backend != BackendCompose {
		d.swarm.Warm(ctx)
	}
	if d.backend != BackendSwarm {
		_, _ = d.checkedIndex(ctx)
	}
}

// swarmJobs finds the swarm services that follow pushed. In auto mode only a swarm manager's
// stack services count; BACKEND=swarm takes every service and needs a manager.
func (d *Deployer) swarmJobs(ctx context.Context, t *Ticket, req Request, pushed registry.Ref) (jobs []job, skipped []string, err error) {
	if d.backend == BackendCompose {
		return nil, nil, nil
	}
	targets, skipped, err := d.swarm.Find(ctx, pushed)
	if err != nil {
		return nil, nil, err
	}
	for _, s := range targets {
		jobs = append(jobs, job{id: t.ID, req: req, image: pushed, projectName: s.Stack, service: s.Service, swarmService: s.ID})
		t.Services = append(t.Services, s.Key())
	}
	return jobs, skipped, nil
}

// updateService has the swarm backend move j's service to the pushed image, notes its steps
// in rec, and remembers a digest the service rolled back from (or forgets it once deployed).
func (d *Deployer) updateService(ctx context.Context, log *slog.Logger, j job, rec *Record) (string, error) {
	key := swarm.Target{Stack: j.projectName, Service: j.service}.Key()
	res, err := d.swarm.Update(ctx, log, swarm.Update{
		Service: j.swarmService, Image: j.image, Digest: j.req.Digest, Auth: d.registryAuth.ForHost(j.image.Host()), Force: d.force,
		RolledBack: func(digest string) (time.Time, string, bool) {
			f, failed := d.failedBefore(key, digest)
			return f.At, f.Reason, failed
		},
	})
	for _, s := range res.Steps {
		rec.Steps = append(rec.Steps, Step{Name: s.Name, At: s.At, Took: s.Took, Error: s.Error})
	}
	if res.Digest != "" {
		rec.Digest = res.Digest
	}
	outcome := swarmOutcome(res.Outcome)
	if res.Sent {
		switch outcome {
		case OutcomeRolledBack:
			d.markFailed(log, key, res.Digest, err)
		case OutcomeDeployed:
			d.forgetFailed(log, key, res.Digest)
		}
	}
	return outcome, err
}

// swarmOutcome is the Record outcome of a swarm update's.
func swarmOutcome(o swarm.Outcome) string {
	switch o {
	case swarm.Deployed:
		return OutcomeDeployed
	case swarm.UpToDate:
		return OutcomeUpToDate
	case swarm.RolledBack:
		return OutcomeRolledBack
	case swarm.Skipped:
		return OutcomeSkipped
	}
	return OutcomeFailed
}
