package deployer

import (
	"context"
	"fmt"
	"slices"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// existing names the service's networks and volumes the engine had when asked.
type existing struct{ networks, volumes map[string]bool }

// lookUpResources asks the engine, while the image pulls, which of the service's networks and
// named volumes exist, so that those checks are off the path from the pull to the new
// container. It only reads: anything missing is checked again and created after the pull.
func (d *Deployer) lookUpResources(ctx context.Context, p *types.Project, s types.ServiceConfig) <-chan existing {
	out := make(chan existing, 1)
	go func() {
		have := existing{networks: map[string]bool{}, volumes: map[string]bool{}}
		for key := range s.Networks {
			if n, ok := p.Networks[key]; ok && d.networkExists(ctx, n.Name) {
				have.networks[n.Name] = true
			}
		}
		for _, v := range s.Volumes {
			if vol, ok := p.Volumes[v.Source]; ok && v.Type == types.VolumeTypeVolume {
				if _, err := d.eng.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err == nil {
					have.volumes[vol.Name] = true
				}
			}
		}
		out <- have
	}()
	return out
}

func (d *Deployer) networkExists(ctx context.Context, name string) bool {
	res, err := d.eng.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", name)})
	return err == nil && slices.ContainsFunc(res.Items, func(x network.Summary) bool { return x.Name == name })
}

// ensureNetworks creates the project networks the service needs and that do not exist yet,
// labelled as compose labels them, so that a later `docker compose up` adopts them. Those in
// have existed a moment ago and are not asked about again.
func (d *Deployer) ensureNetworks(ctx context.Context, p *types.Project, s types.ServiceConfig, version string, have existing) error {
	d.resources.Lock() // two services deployed at once must not both create the network
	defer d.resources.Unlock()
	for key := range s.Networks {
		n, ok := p.Networks[key]
		if !ok {
			return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, key)
		}
		if have.networks[n.Name] {
			continue
		}
		res, err := d.eng.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", n.Name)})
		if err != nil {
			return unavailable("list networks", err)
		}
		if slices.ContainsFunc(res.Items, func(x network.Summary) bool { return x.Name == n.Name }) {
			continue
		}
		if bool(n.External) {
			return fault.Errorf(fault.Invalid, "external network %s does not exist; create it first", n.Name)
		}
		hash, err := compose.NetworkHash(n)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		labels[compose.LabelNetwork] = key
		labels[compose.LabelProject] = p.Name
		labels[compose.LabelVersion] = version
		labels[compose.LabelConfigHash] = hash
		if _, err := d.eng.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{
			Driver: n.Driver, Options: n.DriverOpts, Internal: n.Internal, Attachable: n.Attachable, Labels: labels,
		}); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
	}
	return nil
}

// ensureVolumes does for named volumes what ensureNetworks does for networks.
func (d *Deployer) ensureVolumes(ctx context.Context, p *types.Project, s types.ServiceConfig, version string, have existing) error {
	d.resources.Lock()
	defer d.resources.Unlock()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		vol, ok := p.Volumes[v.Source]
		if !ok {
			return fault.Errorf(fault.Invalid, "service %s uses volume %s, which the project does not define", s.Name, v.Source)
		}
		if have.volumes[vol.Name] {
			continue
		}
		if _, err := d.eng.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return unavailable("inspect volume "+vol.Name, err)
		}
		if bool(vol.External) {
			return fault.Errorf(fault.Invalid, "external volume %s does not exist; create it first", vol.Name)
		}
		hash, err := compose.VolumeHash(vol)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, val := range vol.Labels {
			labels[k] = val
		}
		labels[compose.LabelVolume] = v.Source
		labels[compose.LabelProject] = p.Name
		labels[compose.LabelVersion] = version
		labels[compose.LabelConfigHash] = hash
		if _, err := d.eng.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol.Name, Driver: vol.Driver, DriverOpts: vol.DriverOpts, Labels: labels}); err != nil {
			return fmt.Errorf("create volume %s: %w", vol.Name, err)
		}
	}
	return nil
}
