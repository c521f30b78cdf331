package deployer

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/moby/moby/client"
)

// ProjectFilter limits which discovered projects berth may touch, by compose project name.
// An empty Allow allows every project not in Deny.
type ProjectFilter struct {
	Allow []string // PROJECTS
	Deny  []string // SKIP_PROJECTS
}

// allows says whether the filter lets berth deploy project name.
func (f ProjectFilter) allows(name string) bool {
	if slices.Contains(f.Deny, name) {
		return false
	}
	return len(f.Allow) == 0 || slices.Contains(f.Allow, name)
}

// DiscoveredProject is a compose project found through the labels compose put on its containers.
type DiscoveredProject struct {
	Name        string   `json:"name"`
	WorkingDir  string   `json:"working_dir"`  // as the host sees it (the label)
	ConfigFiles []string `json:"config_files"` // as the host sees them (the label)
	Allowed     bool     `json:"allowed"`      // PROJECTS / SKIP_PROJECTS let berth deploy it
	Readable    bool     `json:"readable"`     // berth can read every compose file
	// Itself is berth's own project, not mounted into berth: never redeployed, so not a problem.
	Itself bool `json:"itself,omitempty"`
	// Problem says why the project cannot be served, and Mount how to fix it (e.g. the volume
	// to add to berth's container); both empty when Readable.
	Problem string       `json:"problem,omitempty"`
	Mount   string       `json:"mount,omitempty"`
	Spec    compose.Spec `json:"-"` // how to load it, in the paths berth sees
}

// DiscoverOptions say how to find and load the projects on the engine.
type DiscoverOptions struct {
	Filter  ProjectFilter
	Self    Self     // berth's own container, whose bind mounts map host paths (FindSelf)
	Environ []string // the environment compose files are interpolated with
}

// Discover lists the compose projects that have containers on the engine, from the labels
// compose writes (project, working_dir, config_files, environment_file), and says for each
// whether berth may deploy it and can load it. Paths are translated through berth's own
// mounts when berth runs in a container (Self.Mounts); with no mount covering them they are
// looked up as they are, which works when the project is mounted at the same path.
func Discover(ctx context.Context, eng Engine, o DiscoverOptions) ([]DiscoveredProject, error) {
	filter, self := o.Filter, o.Self
	res, err := eng.ContainerList(ctx, client.ContainerListOptions{
		All:     true,
		Filters: make(client.Filters).Add("label", compose.LabelProject),
	})
	if err != nil {
		return nil, fault.Errorf(fault.Unavailable, "list compose containers to discover projects: %w", err)
	}
	found := map[string]*DiscoveredProject{}
	envFiles := map[string]string{}
	services := map[string]map[string]bool{}
	for _, c := range res.Items {
		name := c.Labels[compose.LabelProject]
		if name == "" {
			continue
		}
		if services[name] == nil {
			services[name] = map[string]bool{}
		}
		if c.Labels[compose.LabelOneoff] != "True" {
			services[name][c.Labels[compose.LabelService]] = true
		}
		if found[name] != nil && found[name].WorkingDir != "" {
			continue
		}
		p := &DiscoveredProject{Name: name, WorkingDir: c.Labels[compose.LabelWorkingDir]}
		if files := c.Labels[compose.LabelConfigs]; files != "" {
			p.ConfigFiles = strings.Split(files, ",")
		}
		envFiles[name] = c.Labels[compose.LabelEnvFiles]
		found[name] = p
	}
	out := make([]DiscoveredProject, 0, len(found))
	for _, name := range slices.Sorted(maps.Keys(found)) {
		p := found[name]
		p.Allowed = filter.allows(name)
		p.Spec = compose.Spec{Name: name, Dir: self.toLocal(p.WorkingDir)}
		if p.Spec.Dir != p.WorkingDir {
			p.Spec.HostDir = p.WorkingDir // compose must keep writing the host's paths
		}
		for _, f := range p.ConfigFiles {
			p.Spec.Files = append(p.Spec.Files, self.toLocal(f))
		}
		if ef := envFiles[name]; ef != "" {
			for _, f := range strings.Split(ef, ",") {
				p.Spec.EnvFiles = append(p.Spec.EnvFiles, self.toLocal(f))
			}
		}
		p.Spec.Environ = o.Environ
		p.Readable, p.Problem = readable(p)
		if p.Readable && p.Allowed {
			if err := inferProfiles(ctx, p, services[name]); err != nil {
				p.Problem = err.Error()
			}
		}
		if !p.Readable && name == self.Project {
			// berth never recreates its own containers, so its files need not be mounted.
			p.Itself, p.Problem = true, ""
		} else if !p.Readable {
			p.Mount = fmt.Sprintf("%s:%s:ro", p.WorkingDir, p.WorkingDir)
			if p.WorkingDir == "" {
				p.Mount = ""
			}
		}
		out = append(out, *p)
	}
	return out, nil
}

// inferProfiles activates the profiles the project was started with. Compose records them
// nowhere, but a service that has containers was active: the union of those services'
// profiles is the set that makes the same services active again. Without such a service the
// defaults (COMPOSE_PROFILES in the environment or .env) apply.
func inferProfiles(ctx context.Context, p *DiscoveredProject, running map[string]bool) error {
	loaded, err := compose.Load(ctx, p.Spec)
	if err != nil {
		return err
	}
	var profiles []string
	for name := range running {
		s, ok := loaded.DisabledServices[name]
		if !ok {
			s, ok = loaded.Services[name]
		}
		if ok {
			profiles = append(profiles, s.Profiles...)
		}
	}
	if len(profiles) > 0 {
		slices.Sort(profiles)
		p.Spec.Profiles = slices.Compact(profiles)
	}
	return nil
}

// readable checks that berth can open every file the project is loaded from.
func readable(p *DiscoveredProject) (bool, string) {
	if p.WorkingDir == "" || len(p.ConfigFiles) == 0 {
		return false, "its containers carry no working_dir/config_files labels (made by something other than docker compose v2?)"
	}
	for _, f := range slices.Concat(p.Spec.Files, p.Spec.EnvFiles) {
		fh, err := os.Open(f)
		if err != nil {
			return false, fmt.Sprintf("berth cannot read %s: %v", f, err)
		}
		fh.Close()
	}
	return true, ""
}

// toLocal turns a host path into the path berth sees it at: through the longest of berth's
// own bind mounts that covers it, or unchanged (outside a container, or mounted at the same path).
func (s Self) toLocal(hostPath string) string {
	if hostPath == "" {
		return ""
	}
	best, local := "", hostPath
	for _, m := range s.Mounts {
		if m.Source == "" || !compose.Within(hostPath, m.Source) || len(m.Source) <= len(best) {
			continue
		}
		rel, _ := filepath.Rel(m.Source, hostPath)
		best, local = m.Source, filepath.Join(m.Destination, rel)
	}
	return local
}
