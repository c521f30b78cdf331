package compose

import (
	"fmt"
	"net/netip"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// networkSpecs attaches the primary network at create time and leaves the others for
// NetworkConnect before start: Engine API versions below 1.44 take a single endpoint at create,
// and compose does the same on every version it negotiates below that.
func networkSpecs(p *types.Project, s types.ServiceConfig, n int, spec *CreateSpec) error {
	if len(p.Networks) == 0 || len(s.Networks) == 0 {
		spec.Host.NetworkMode = network.NetworkNone
		return nil
	}
	keys := s.NetworksByPriority()
	primary, ok := p.Networks[keys[0]]
	if !ok {
		return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, keys[0])
	}
	ep, err := endpoint(p, s, n, keys[0])
	if err != nil {
		return err
	}
	spec.Host.NetworkMode = container.NetworkMode(primary.Name)
	spec.Network = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{primary.Name: ep}}
	spec.Secondary = map[string]*network.EndpointSettings{}
	for _, key := range keys[1:] {
		nw, ok := p.Networks[key]
		if !ok {
			return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, key)
		}
		ep, err := endpoint(p, s, n, key)
		if err != nil {
			return err
		}
		spec.Secondary[nw.Name] = ep
	}
	return nil
}

// endpoint is replica n's endpoint on the service's network key: its name and the service's as
// aliases, and the addresses the file gives.
func endpoint(p *types.Project, s types.ServiceConfig, n int, key string) (*network.EndpointSettings, error) {
	cfg := s.Networks[key]
	ep := &network.EndpointSettings{Aliases: []string{ContainerName(p.Name, s, n), s.Name}}
	if cfg != nil {
		// compose sends an IPAM config for every network given with options, even an empty one.
		ep.Aliases = append(ep.Aliases, cfg.Aliases...)
		ipam := &network.EndpointIPAMConfig{}
		if cfg.Ipv4Address != "" {
			a, err := netip.ParseAddr(cfg.Ipv4Address)
			if err != nil {
				return nil, fault.Errorf(fault.Invalid, "service %s network %s: ipv4_address: %w", s.Name, key, err)
			}
			ipam.IPv4Address = a.Unmap()
			ep.IPAddress = a
		}
		if cfg.Ipv6Address != "" {
			a, err := netip.ParseAddr(cfg.Ipv6Address)
			if err != nil {
				return nil, fault.Errorf(fault.Invalid, "service %s network %s: ipv6_address: %w", s.Name, key, err)
			}
			ipam.IPv6Address = a
		}
		for _, l := range cfg.LinkLocalIPs {
			if l == "" {
				continue
			}
			a, err := netip.ParseAddr(l)
			if err != nil {
				return nil, fault.Errorf(fault.Invalid, "service %s network %s: link_local_ips: %w", s.Name, key, err)
			}
			ipam.LinkLocalIPs = append(ipam.LinkLocalIPs, a)
		}
		ep.IPAMConfig = ipam
		ep.DriverOpts = cfg.DriverOpts
		ep.GwPriority = cfg.GatewayPriority
	}
	return ep, nil
}

// portSpecs are the ports s exposes (ports and expose) and the host bindings of its ports.
func portSpecs(s types.ServiceConfig) (network.PortSet, network.PortMap, error) {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range s.Ports {
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", p.Target, p.Protocol))
		if err != nil {
			return nil, nil, fault.Errorf(fault.Invalid, "service %s port %d: %w", s.Name, p.Target, err)
		}
		exposed[port] = struct{}{}
		var hostIP netip.Addr
		if p.HostIP != "" {
			if hostIP, err = netip.ParseAddr(p.HostIP); err != nil {
				return nil, nil, fault.Errorf(fault.Invalid, "service %s port %d: host ip: %w", s.Name, p.Target, err)
			}
		}
		bindings[port] = append(bindings[port], network.PortBinding{HostIP: hostIP, HostPort: p.Published})
	}
	for _, e := range s.Expose {
		pr, err := network.ParsePortRange(e)
		if err != nil {
			return nil, nil, fault.Errorf(fault.Invalid, "service %s expose %q: %w", s.Name, e, err)
		}
		for port := range pr.All() {
			exposed[port] = struct{}{}
		}
	}
	return exposed, bindings, nil
}
