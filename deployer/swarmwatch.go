package deployer

import (
	"context"

	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/watch"
)

// Watch mode for swarm services: the services a push of their tag would update (stack
// services on a manager, every service with BACKEND=swarm) are watched when their spec's
// labels (a stack file's deploy.labels) opt in. The running digest is the one the spec pins
// (docker stack deploy pins it); a new one is deployed as a push of it would be, by the swarm
// backend's service update.

// swarmWatchTargets adds the watched swarm services to out, by stack/service. A compose
// service of the same key keeps it.
func (d *Deployer) swarmWatchTargets(ctx context.Context, defaults watch.Defaults, bad func(string, error), out map[string]watchTarget) error {
	services, err := d.swarm.Followed(ctx)
	if err != nil {
		return err
	}
	for _, s := range services {
		key := s.Key()
		pol, err := watch.ParsePolicy(s.Labels, defaults)
		if err != nil {
			bad(key, err)
			continue
		}
		if _, taken := out[key]; taken || pol.Mode == watch.ModeOff {
			continue
		}
		image := registry.Ref{Name: s.Image.Name, Tag: s.Image.Tag} // the tag it follows, without the pin
		out[key] = watchTarget{key: key, project: s.Stack, service: s.Service, ref: image.String(), image: image, policy: pol, swarmService: s.ID}
	}
	return nil
}
