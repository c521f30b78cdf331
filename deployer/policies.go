package deployer

import (
	"context"
	"errors"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/hook"
)

// ServicePolicy is the pre-deploy gate and lifecycle hooks one service would get, for `berth check`.
type ServicePolicy struct {
	Project string      `json:"project"`
	Service string      `json:"service"`
	Gate    gate.Config `json:"gate"`              // zero when the service has no gate
	Hooks   hook.Set    `json:"hooks"`             // zero when it declares none
	Problem string      `json:"problem,omitempty"` // a label berth would refuse at deploy time
}

// Policies lists the gate and hooks of every service of the projects berth serves now,
// touching nothing. A malformed label is reported in Problem, as the deploy would refuse it.
func (d *Deployer) Policies(ctx context.Context) ([]ServicePolicy, error) {
	projects, err := d.servedProjects(ctx, compose.Load, skipUnloadable)
	if err != nil {
		return nil, err
	}
	var out []ServicePolicy
	for _, sp := range projects {
		p := sp.project
		for _, name := range serviceNames(p) {
			sp := ServicePolicy{Project: p.Name, Service: name}
			labels := p.Services[name].Labels
			var gerr, herr error
			sp.Gate, gerr = gate.For(d.gate, labels)
			sp.Hooks, herr = hook.For(labels)
			if err := errors.Join(gerr, herr); err != nil {
				sp.Problem = err.Error()
			}
			out = append(out, sp)
		}
	}
	return out, nil
}
