package deployer

import (
	"context"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/swarm"
	"github.com/moby/moby/client"
)

// Self is the compose service berth itself runs as, learned from the engine at start. berth
// never recreates it (nor its socket proxy): stopping the container that serves the request
// would kill berth halfway through the swap and leave the service down.
type Self struct {
	ContainerID string
	Project     string       // com.docker.compose.project of berth's container; "" outside compose
	Service     string       // com.docker.compose.service of berth's container
	Image       registry.Ref // the image berth's container was created from
	Mounts      []Mount      // berth's bind mounts: how host paths map to the paths berth sees
	// SwarmService and Stack are the swarm service (id) and stack berth runs as; "" outside swarm.
	SwarmService string
	Stack        string
}

// Mount is one bind mount of berth's container.
type Mount struct {
	Source      string // the host path
	Destination string // where berth sees it
}

// isSelf says whether service name of project runs berth: berth's own service, or another
// service of berth's project on berth's image (the socket proxy berth talks through).
func (s Self) isSelf(project, name string, image registry.Ref) bool {
	if s.Project == "" || project != s.Project {
		return false
	}
	return name == s.Service || (s.Image.Name != "" && image.Name == s.Image.Name)
}

// FindSelf asks the engine which container berth runs in. Outside a container (or in one this
// engine does not run) it returns a zero Self and no error.
func FindSelf(ctx context.Context, eng Engine) (Self, error) {
	res, found, err := inspectOwnContainer(ctx, eng)
	if err != nil || !found {
		return Self{}, err
	}
	return selfFromInspect(res), nil
}

// selfFromInspect reads berth's compose identity and bind mounts from its container.
func selfFromInspect(res client.ContainerInspectResult) Self {
	self := Self{ContainerID: res.Container.ID}
	if cfg := res.Container.Config; cfg != nil {
		self.Project, self.Service = cfg.Labels[compose.LabelProject], cfg.Labels[compose.LabelService]
		self.Image, _ = registry.ParseRef(cfg.Image)
		self.SwarmService, self.Stack = cfg.Labels[swarm.LabelService], cfg.Labels[swarm.LabelStack]
	}
	for _, m := range res.Container.Mounts {
		if m.Type == "bind" {
			self.Mounts = append(self.Mounts, Mount{Source: m.Source, Destination: m.Destination})
		}
	}
	return self
}
