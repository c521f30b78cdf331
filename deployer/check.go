package deployer

import (
	"context"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/moby/moby/client"
)

// ServiceCheck is what `berth check` reports of one service, changing nothing.
type ServiceCheck struct {
	Project   string
	Service   string
	Image     string
	Skipped   string // why berth leaves the service alone; "" when it deploys it
	TagPolicy string
	Registry  error  // nil when the registry resolved the image with berth's login (or none needed)
	HashRule  string // the compose release's config-hash rule berth applies to the project
	// StartFirst is why a start-first service falls back to stop-first; "" when it does not.
	StartFirst string
}

// CheckServices reports every service berth serves: whether it deploys it, under which tag
// policy, and whether the image's registry answers with berth's login. Projects that do not
// load are reported by Projects.
func (d *Deployer) CheckServices(ctx context.Context) ([]ServiceCheck, error) {
	projects, err := d.servedProjects(ctx, compose.Load, skipUnloadable)
	if err != nil {
		return nil, err
	}
	var out []ServiceCheck
	resolved := map[string]error{}
	for _, sp := range projects {
		p := sp.project
		rule := compose.HashRule(compose.VersionFor(d.version, nil))
		if existing, err := d.projectContainers(ctx, p.Name); err == nil {
			rule = compose.HashRule(compose.VersionFor(d.version, existing))
		}
		for _, name := range serviceNames(p) {
			s := p.Services[name]
			c := ServiceCheck{Project: p.Name, Service: name, Image: s.Image, Skipped: d.selects(s.Labels), TagPolicy: tagPolicy(s.Labels),
				HashRule: rule, StartFirst: StartFirstProblem(s)}
			if s.Image != "" {
				if _, done := resolved[s.Image]; !done {
					resolved[s.Image] = d.CheckRegistry(ctx, s.Image)
				}
				c.Registry = resolved[s.Image]
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// CheckRegistry asks the engine to resolve ref in its registry with berth's login, which
// proves the login (if any) is accepted without pulling anything.
func (d *Deployer) CheckRegistry(ctx context.Context, ref string) error {
	ctx, cancel := d.registryContext(ctx, d.regTimeout)
	defer cancel()
	if _, err := d.eng.DistributionInspect(ctx, ref, client.DistributionInspectOptions{EncodedRegistryAuth: d.creds.Header(ref)}); err != nil {
		return d.creds.Explain(ref, unavailable("resolve "+ref+" in its registry", err))
	}
	return nil
}

// projectContainers lists the project's service containers, whatever their state.
func (d *Deployer) projectContainers(ctx context.Context, project string) ([]container.Summary, error) {
	f := client.Filters{}.Add("label", compose.LabelProject+"="+project, compose.LabelOneoff+"=False")
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, err
	}
	return res.Items, nil
}
