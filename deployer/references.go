package deployer

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

const servicePrefix = "service:"

// resolveServiceReferences rewrites network_mode, ipc and pid "service:x" to "container:<id>"
// and volumes_from entries to container ids, as compose does before it hashes and creates the
// service: the id is that of x's first container by name. A service referring to one that has
// no container yet is refused, as compose would fail.
func (d *Deployer) resolveServiceReferences(ctx context.Context, p *types.Project, s *types.ServiceConfig) error {
	if !strings.HasPrefix(s.NetworkMode, servicePrefix) && !strings.HasPrefix(s.Ipc, servicePrefix) &&
		!strings.HasPrefix(s.Pid, servicePrefix) && len(s.VolumesFrom) == 0 {
		return nil
	}
	first := func(service, what string) (string, error) {
		cs, err := d.serviceContainers(ctx, p.Name, service)
		if err != nil {
			return "", err
		}
		if len(cs) == 0 {
			return "", fault.Errorf(fault.Conflict, "service %s shares the %s of service %s, which has no container; run docker compose up -d first", s.Name, what, service)
		}
		slices.SortFunc(cs, func(a, b container.Summary) int { return strings.Compare(canonicalName(a), canonicalName(b)) })
		return cs[0].ID, nil
	}
	for _, f := range []struct {
		field *string
		what  string
	}{{&s.NetworkMode, "network namespace"}, {&s.Ipc, "IPC namespace"}, {&s.Pid, "PID namespace"}} {
		if name, ok := strings.CutPrefix(*f.field, servicePrefix); ok {
			id, err := first(name, f.what)
			if err != nil {
				return err
			}
			*f.field = types.ContainerPrefix + id
		}
	}
	from := slices.Clone(s.VolumesFrom)
	for i, v := range from {
		parts := strings.Split(v, ":")
		if parts[0] == "container" && len(parts) > 1 {
			from[i] = parts[1]
			continue
		}
		id, err := first(parts[0], "volumes")
		if err != nil {
			return err
		}
		from[i] = id
	}
	s.VolumesFrom = from
	return nil
}

// canonicalName is the container's shortest name without the leading slash, as compose sorts.
func canonicalName(c container.Summary) string {
	name := ""
	for _, n := range c.Names {
		n = strings.TrimPrefix(n, "/")
		if name == "" || len(n) < len(name) {
			name = n
		}
	}
	return name
}

// followDependents does to the services that depend on the one just redeployed what
// `docker compose up -d` does to them: a service sharing its network, IPC or PID namespace or
// its volumes is recreated (its config hash holds the replaced container's id, and its
// namespace went away with it); a service with depends_on … restart: true is restarted.
func (d *Deployer) followDependents(ctx context.Context, log *slog.Logger, j job, p *types.Project) error {
	for _, name := range p.ServiceNames() {
		dep := p.Services[name]
		if name == j.service {
			continue
		}
		cs, err := d.serviceContainers(ctx, p.Name, name)
		if err != nil {
			return err
		}
		if len(cs) == 0 {
			continue
		}
		switch {
		case sharesWith(dep, j.service):
			log.Info("recreate dependent", "dependent", name)
			next := j
			next.service, next.dependent = name, true
			if _, err := d.redeploy(ctx, log.With("dependent", name), next, d.newProgress(log), &Record{}); err != nil { // the Record is the pushed service's
				return fmt.Errorf("recreate %s, which depends on %s: %w", name, j.service, err)
			}
		case dep.DependsOn[j.service].Restart:
			for _, c := range cs {
				if c.State != container.StateRunning {
					continue
				}
				log.Info("restart dependent", "container", canonicalName(c))
				if _, err := d.eng.ContainerStop(ctx, c.ID, client.ContainerStopOptions{}); err != nil {
					return fmt.Errorf("stop %s, which depends on %s: %w", canonicalName(c), j.service, err)
				}
				if _, err := d.eng.ContainerStart(ctx, c.ID, client.ContainerStartOptions{}); err != nil {
					return fmt.Errorf("start %s, which depends on %s: %w", canonicalName(c), j.service, err)
				}
			}
		}
	}
	return nil
}

// sharesWith says whether s uses a namespace or the volumes of service.
func sharesWith(s types.ServiceConfig, service string) bool {
	ref := servicePrefix + service
	if s.NetworkMode == ref || s.Ipc == ref || s.Pid == ref {
		return true
	}
	return slices.ContainsFunc(s.VolumesFrom, func(v string) bool {
		name, _, _ := strings.Cut(v, ":")
		return name == service
	})
}
