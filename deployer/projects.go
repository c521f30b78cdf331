package deployer

import (
	"cmp"
	"context"
	"maps"
	"slices"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/compose-spec/compose-go/v2/types"
)

// served is one compose project berth serves, loaded.
type served struct {
	spec    compose.Spec
	project *types.Project
}

// skipUnloadable is the onLoadErr of walks that leave a project that does not load out
// (berth check reports it through Projects).
func skipUnloadable(compose.Spec, error) error { return nil }

// servedProjects loads every project berth serves now (configured or discovered) with load
// and returns those PROJECTS and SKIP_PROJECTS allow, in order. A project that does not load
// goes to onLoadErr, which returns nil to leave it out or an error to stop.
func (d *Deployer) servedProjects(ctx context.Context, load func(context.Context, compose.Spec) (*types.Project, error),
	onLoadErr func(compose.Spec, error) error) ([]served, error) {
	specs, err := d.projectSpecs(ctx)
	if err != nil {
		return nil, err
	}
	var out []served
	for _, spec := range specs {
		p, err := load(ctx, spec)
		if err != nil {
			if err := onLoadErr(spec, err); err != nil {
				return nil, err
			}
			continue
		}
		if !d.filter.allows(p.Name) {
			d.log.Debug("project not allowed by PROJECTS/SKIP_PROJECTS; skipped", "project", p.Name)
			continue
		}
		out = append(out, served{spec: spec, project: p})
	}
	return out, nil
}

// serviceNames is p's service names, sorted: every listing berth makes is in this order.
func serviceNames(p *types.Project) []string { return slices.Sorted(maps.Keys(p.Services)) }

// projectSpecs is the projects a push is matched against: the configured ones, or the ones
// discovered on the engine now that berth may touch and can read.
func (d *Deployer) projectSpecs(ctx context.Context) ([]compose.Spec, error) {
	if d.backend == BackendSwarm {
		return nil, nil
	}
	if !d.discover {
		return d.projects, nil
	}
	found, err := d.discoveries.Do(ctx, "", func(ctx context.Context) ([]DiscoveredProject, error) {
		return Discover(ctx, d.eng, d.discoverOptions())
	})
	if err != nil {
		return nil, err
	}
	var specs []compose.Spec
	for _, p := range found {
		switch {
		case !p.Allowed:
			continue
		case !p.Readable:
			d.log.Warn("discovered project cannot be read; skipped", "project", p.Name, "problem", p.Problem, "mount", p.Mount)
			continue
		case p.Problem != "":
			// One broken project on the host must not stop the others' deploys.
			d.log.Warn("discovered project does not load; skipped", "project", p.Name, "problem", p.Problem)
			continue
		}
		specs = append(specs, p.Spec)
	}
	return specs, nil
}

func (d *Deployer) discoverOptions() DiscoverOptions {
	return DiscoverOptions{Filter: d.filter, Self: d.self, Environ: d.environ}
}

// Projects lists the compose projects berth would serve now (discovered or configured), for
// `berth check`: which it may touch, which it can read, and the mount that would fix the others.
func (d *Deployer) Projects(ctx context.Context) ([]DiscoveredProject, error) {
	if d.discover {
		return Discover(ctx, d.eng, d.discoverOptions())
	}
	var out []DiscoveredProject
	for _, spec := range d.projects {
		p := DiscoveredProject{Name: spec.Name, WorkingDir: cmp.Or(spec.HostDir, spec.Dir), Spec: spec}
		loaded, err := compose.Load(ctx, spec)
		if err != nil {
			p.Problem = err.Error()
		} else {
			p.Name, p.Readable, p.ConfigFiles = loaded.Name, true, loaded.ComposeFiles
		}
		p.Allowed = d.filter.allows(p.Name)
		out = append(out, p)
	}
	return out, nil
}
