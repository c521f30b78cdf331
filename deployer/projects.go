package deployer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/registry"
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
// (discovery found it broken, or load fails) goes to onLoadErr, which returns nil to leave it
// out or an error to stop.
func (d *Deployer) servedProjects(ctx context.Context, load func(context.Context, compose.Spec) (*types.Project, error),
	onLoadErr func(compose.Spec, error) error) ([]served, error) {
	specs, err := d.projectSpecs(ctx)
	if err != nil {
		return nil, err
	}
	var out []served
	for _, spec := range specs {
		var p *types.Project
		err := spec.broken
		if err == nil {
			p, err = load(ctx, spec.Spec)
		}
		if err != nil {
			if err := onLoadErr(spec.Spec, err); err != nil {
				return nil, err
			}
			continue
		}
		if !d.filter.allows(p.Name) {
			d.log.Debug("project not allowed by PROJECTS/SKIP_PROJECTS; skipped", "project", p.Name)
			continue
		}
		out = append(out, served{spec: spec.Spec, project: p})
	}
	return out, nil
}

// serviceNames is p's service names, sorted: every listing berth makes is in this order.
func serviceNames(p *types.Project) []string { return slices.Sorted(maps.Keys(p.Services)) }

// projectSpec is a project to load; broken is why discovery found it does not load, if it did.
type projectSpec struct {
	compose.Spec
	broken error
}

// projectSpecs is the projects a push is matched against: the configured ones, or the ones
// discovered on the engine now that berth may touch and can read.
func (d *Deployer) projectSpecs(ctx context.Context) ([]projectSpec, error) {
	if d.backend == BackendSwarm {
		return nil, nil
	}
	var specs []projectSpec
	if !d.discover {
		for _, spec := range d.projects {
			specs = append(specs, projectSpec{Spec: spec})
		}
		return specs, nil
	}
	found, err := d.discoveries.Do(ctx, "", func(ctx context.Context) ([]DiscoveredProject, error) {
		return Discover(ctx, d.eng, d.discoverOptions())
	})
	if err != nil {
		return nil, err
	}
	for _, p := range found {
		switch {
		case !p.Allowed, p.Itself:
			continue
		case !p.Readable:
			// berth warned at start (logDiscovered); once per push would bury the log.
			d.log.Debug("discovered project cannot be read; skipped", "project", p.Name, "problem", p.Problem, "mount", p.Mount)
			continue
		case p.Problem != "":
			specs = append(specs, projectSpec{Spec: p.Spec, broken: errors.New(p.Problem)})
			continue
		}
		specs = append(specs, projectSpec{Spec: p.Spec})
	}
	return specs, nil
}

// mightRun says whether a project that does not load could run pushed: whether one of its
// compose or env files names the repository (acme/web; busybox for an official image). A
// project whose files never name it cannot run it, whatever is broken in it.
func mightRun(spec compose.Spec, pushed registry.Ref) bool {
	name := []byte(registry.Ref{Name: pushed.Name}.Familiar())
	for _, f := range specFiles(spec) {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) || bytes.Contains(b, name) {
			return true
		}
	}
	return false
}

// specFiles is the files spec names, or those compose looks for when it names none: its
// compose files and env files, whether they exist or not.
func specFiles(spec compose.Spec) []string {
	files := slices.Concat(spec.Files, spec.EnvFiles)
	if len(spec.Files) == 0 {
		for _, f := range []string{"compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml",
			"compose.override.yaml", "compose.override.yml", "docker-compose.override.yml", "docker-compose.override.yaml"} {
			files = append(files, filepath.Join(spec.Dir, f))
		}
	}
	if len(spec.EnvFiles) == 0 {
		files = append(files, filepath.Join(spec.Dir, ".env"))
	}
	return files
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
