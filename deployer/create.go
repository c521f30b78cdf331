package deployer

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// supportedKeys are the compose service attributes berth turns into a container exactly as
// docker compose does. A service using any other attribute is refused rather than deployed
// with that attribute silently dropped.
var supportedKeys = map[string]bool{
	"cap_add": true, "cap_drop": true, "command": true, "container_name": true, "depends_on": true,
	"deploy": true, "dns": true, "dns_opt": true, "dns_search": true, "domainname": true,
	"entrypoint": true, "environment": true, "env_file": true, "expose": true, "extra_hosts": true,
	"group_add": true, "healthcheck": true, "hostname": true, "image": true, "init": true,
	"labels": true, "label_file": true, "logging": true, "mem_limit": true, "mem_reservation": true,
	"cpus": true, "networks": true, "ports": true, "privileged": true, "profiles": true,
	"pull_policy": true, "read_only": true, "restart": true, "scale": true, "security_opt": true,
	"shm_size": true, "stop_grace_period": true, "stop_signal": true, "sysctls": true,
	"tmpfs": true, "ulimits": true, "user": true, "volumes": true, "working_dir": true,
	"stdin_open": true, "tty": true, "pids_limit": true,
}

// checkSupported refuses a service that sets an attribute berth cannot yet reproduce.
func checkSupported(s types.ServiceConfig) error {
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode service %s: %w", s.Name, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("decode service %s: %w", s.Name, err)
	}
	var unsupported []string
	for k := range fields {
		if !supportedKeys[k] {
			unsupported = append(unsupported, k)
		}
	}
	if s.NetworkMode != "" {
		unsupported = append(unsupported, "network_mode")
	}
	if s.Build != nil {
		return Errorf(KindInvalid, "service %s has a build section; berth deploys pushed images only (remove build: or deploy it with docker compose)", s.Name)
	}
	if s.Deploy != nil && len(s.Deploy.Placement.Constraints)+len(s.Deploy.Placement.Preferences) > 0 {
		unsupported = append(unsupported, "deploy.placement")
	}
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind, types.VolumeTypeVolume, types.VolumeTypeTmpfs:
		default:
			unsupported = append(unsupported, "volumes (type "+v.Type+")")
		}
	}
	if len(unsupported) > 0 {
		slices.Sort(unsupported)
		return Errorf(KindInvalid, "service %s uses %s, which berth does not support yet; nothing was changed (deploy it with docker compose, or remove the attribute)",
			s.Name, strings.Join(unsupported, ", "))
	}
	return nil
}

// createSpec is everything ContainerCreate and the NetworkConnect calls after it need.
type createSpec struct {
	Config    *container.Config
	Host      *container.HostConfig
	Network   *network.NetworkingConfig
	Secondary map[string]*network.EndpointSettings // network name → endpoint, connected before start
}

// containerLabels are the labels of replica n: the user's labels, then compose's own on top.
func containerLabels(s types.ServiceConfig, hash, imageID, version string, n int, replaces string) map[string]string {
	labels := map[string]string{}
	maps.Copy(labels, s.Labels)
	maps.Copy(labels, s.CustomLabels)
	labels[labelVersion] = version
	labels[labelImage] = imageID
	labels[labelConfigHash] = hash
	labels[labelNumber] = strconv.Itoa(n)
	var deps []string
	for name, d := range s.DependsOn {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", name, d.Condition, d.Restart))
	}
	slices.Sort(deps)
	labels[labelDependsOn] = strings.Join(deps, ",")
	if replaces != "" {
		labels[labelReplace] = replaces
	}
	return labels
}

// buildCreateSpec mirrors compose's container configuration for replica n of s. inherited are
// the mounts of the container being replaced, so its anonymous volumes carry over.
func buildCreateSpec(p *types.Project, s types.ServiceConfig, n int, labels map[string]string, imageVolumes map[string]struct{}, inherited []container.MountPoint) (createSpec, error) {
	exposed, bindings, err := portSpecs(s)
	if err != nil {
		return createSpec{}, err
	}
	cfg := &container.Config{
		Hostname:     s.Hostname,
		Domainname:   s.DomainName,
		User:         s.User,
		ExposedPorts: exposed,
		Tty:          s.Tty,
		OpenStdin:    s.StdinOpen,
		AttachStdout: true,
		AttachStderr: true,
		Cmd:          s.Command,
		Image:        s.Image,
		WorkingDir:   s.WorkingDir,
		Entrypoint:   s.Entrypoint,
		Labels:       labels,
		StopSignal:   s.StopSignal,
		Env:          envList(s.Environment),
		Healthcheck:  healthConfig(s.HealthCheck),
		StopTimeout:  stopTimeout(s.StopGracePeriod),
	}
	binds, mounts, err := volumeSpecs(p, s, imageVolumes, inherited)
	if err != nil {
		return createSpec{}, err
	}
	var dns []netip.Addr
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return createSpec{}, Errorf(KindInvalid, "service %s: dns %q is not an IP address", s.Name, d)
		}
		dns = append(dns, a)
	}
	tmpfs := map[string]string{}
	for _, t := range s.Tmpfs {
		k, v, _ := strings.Cut(t, ":")
		tmpfs[k] = v
	}
	var logConfig container.LogConfig
	if s.Logging != nil {
		logConfig = container.LogConfig{Type: s.Logging.Driver, Config: s.Logging.Options}
	}
	host := &container.HostConfig{
		Binds:          binds,
		Mounts:         mounts,
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		Init:           s.Init,
		ReadonlyRootfs: s.ReadOnly,
		RestartPolicy:  restartPolicy(s),
		ShmSize:        int64(s.ShmSize),
		Sysctls:        s.Sysctls,
		PortBindings:   bindings,
		Resources:      resources(s),
		DNS:            dns,
		DNSSearch:      s.DNSSearch,
		DNSOptions:     s.DNSOpts,
		ExtraHosts:     s.ExtraHosts.AsList(":"),
		SecurityOpt:    s.SecurityOpt,
		Privileged:     s.Privileged,
		Tmpfs:          tmpfs,
		LogConfig:      logConfig,
		GroupAdd:       s.GroupAdd,
	}
	spec := createSpec{Config: cfg, Host: host}
	if err := networkSpecs(p, s, n, &spec); err != nil {
		return createSpec{}, err
	}
	return spec, nil
}

// networkSpecs attaches the primary network at create time and leaves the others for
// NetworkConnect before start: Engine API versions below 1.44 take a single endpoint at create,
// and compose does the same on every version it negotiates below that.
func networkSpecs(p *types.Project, s types.ServiceConfig, n int, spec *createSpec) error {
	if len(p.Networks) == 0 || len(s.Networks) == 0 {
		spec.Host.NetworkMode = network.NetworkNone
		return nil
	}
	keys := s.NetworksByPriority()
	endpoint := func(key string) (*network.EndpointSettings, error) {
		cfg := s.Networks[key]
		ep := &network.EndpointSettings{Aliases: []string{containerName(p.Name, s, n), s.Name}}
		if cfg != nil {
			// compose sends an IPAM config for every network given with options, even an empty one.
			ep.Aliases = append(ep.Aliases, cfg.Aliases...)
			ipam := &network.EndpointIPAMConfig{}
			if cfg.Ipv4Address != "" {
				a, err := netip.ParseAddr(cfg.Ipv4Address)
				if err != nil {
					return nil, Errorf(KindInvalid, "service %s network %s: ipv4_address: %w", s.Name, key, err)
				}
				ipam.IPv4Address = a.Unmap()
				ep.IPAddress = a
			}
			if cfg.Ipv6Address != "" {
				a, err := netip.ParseAddr(cfg.Ipv6Address)
				if err != nil {
					return nil, Errorf(KindInvalid, "service %s network %s: ipv6_address: %w", s.Name, key, err)
				}
				ipam.IPv6Address = a
			}
			for _, l := range cfg.LinkLocalIPs {
				if l == "" {
					continue
				}
				a, err := netip.ParseAddr(l)
				if err != nil {
					return nil, Errorf(KindInvalid, "service %s network %s: link_local_ips: %w", s.Name, key, err)
				}
				ipam.LinkLocalIPs = append(ipam.LinkLocalIPs, a)
			}
			ep.IPAMConfig = ipam
			ep.DriverOpts = cfg.DriverOpts
			ep.GwPriority = cfg.GatewayPriority
		}
		return ep, nil
	}
	primary, ok := p.Networks[keys[0]]
	if !ok {
		return Errorf(KindInvalid, "service %s uses network %s, which the project does not define", s.Name, keys[0])
	}
	ep, err := endpoint(keys[0])
	if err != nil {
		return err
	}
	spec.Host.NetworkMode = container.NetworkMode(primary.Name)
	spec.Network = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{primary.Name: ep}}
	spec.Secondary = map[string]*network.EndpointSettings{}
	for _, key := range keys[1:] {
		nw, ok := p.Networks[key]
		if !ok {
			return Errorf(KindInvalid, "service %s uses network %s, which the project does not define", s.Name, key)
		}
		ep, err := endpoint(key)
		if err != nil {
			return err
		}
		spec.Secondary[nw.Name] = ep
	}
	return nil
}

func portSpecs(s types.ServiceConfig) (network.PortSet, network.PortMap, error) {
	exposed := network.PortSet{}
	bindings := network.PortMap{}
	for _, p := range s.Ports {
		port, err := network.ParsePort(fmt.Sprintf("%d/%s", p.Target, p.Protocol))
		if err != nil {
			return nil, nil, Errorf(KindInvalid, "service %s port %d: %w", s.Name, p.Target, err)
		}
		exposed[port] = struct{}{}
		var hostIP netip.Addr
		if p.HostIP != "" {
			if hostIP, err = netip.ParseAddr(p.HostIP); err != nil {
				return nil, nil, Errorf(KindInvalid, "service %s port %d: host ip: %w", s.Name, p.Target, err)
			}
		}
		bindings[port] = append(bindings[port], network.PortBinding{HostIP: hostIP, HostPort: p.Published})
	}
	for _, e := range s.Expose {
		pr, err := network.ParsePortRange(e)
		if err != nil {
			return nil, nil, Errorf(KindInvalid, "service %s expose %q: %w", s.Name, e, err)
		}
		for port := range pr.All() {
			exposed[port] = struct{}{}
		}
	}
	return exposed, bindings, nil
}

// volumeSpecs splits the service's volumes the way compose does: plain binds and named volumes
// as Binds strings, everything needing options as Mounts. Anonymous volumes of the replaced
// container are mounted again by name so their data survives the recreate.
func volumeSpecs(p *types.Project, s types.ServiceConfig, imageVolumes map[string]struct{}, inherited []container.MountPoint) ([]string, []mount.Mount, error) {
	byTarget := map[string]mount.Mount{}
	volumes := s.Volumes
	for _, m := range inherited {
		if m.Type == mount.TypeTmpfs {
			continue
		}
		src := m.Source
		if m.Type == mount.TypeVolume {
			src = m.Name
		}
		inherit := mount.Mount{Type: m.Type, Source: src, Target: m.Destination, ReadOnly: !m.RW}
		if _, ok := imageVolumes[m.Destination]; ok {
			byTarget[m.Destination] = inherit
		}
		volumes = slices.DeleteFunc(slices.Clone(volumes), func(v types.ServiceVolumeConfig) bool {
			if v.Target == m.Destination && v.Source == "" {
				byTarget[m.Destination] = inherit
				return true
			}
			return false
		})
	}
	var binds []string
	var mounts []mount.Mount
	declared := map[string]*types.ServiceVolumeConfig{}
	for i := range volumes {
		v := volumes[i]
		declared[v.Target] = &volumes[i]
		m, err := serviceMount(p, v)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		byTarget[v.Target] = m
	}
	for _, target := range slices.Sorted(maps.Keys(byTarget)) {
		m := byTarget[target]
		if v := declared[target]; v != nil {
			switch {
			case m.Type == mount.TypeBind && !bindNeedsMountAPI(v.Bind):
				binds = append(binds, bindString(m.Source, v))
				continue
			case m.Type == mount.TypeVolume && v.Source != "" && !volumeNeedsMountAPI(v.Volume):
				binds = append(binds, bindString(m.Source, v))
				continue
			}
		}
		mounts = append(mounts, m)
	}
	return binds, mounts, nil
}

func serviceMount(p *types.Project, v types.ServiceVolumeConfig) (mount.Mount, error) {
	m := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly, Consistency: mount.Consistency(v.Consistency)}
	switch v.Type {
	case types.VolumeTypeBind:
		if !filepath.IsAbs(v.Source) {
			return mount.Mount{}, Errorf(KindInvalid, "bind mount source %q is not absolute", v.Source)
		}
		if v.Bind != nil {
			m.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(v.Bind.Propagation), CreateMountpoint: bool(v.Bind.CreateHostPath)}
			switch v.Bind.Recursive {
			case "disabled":
				m.BindOptions.NonRecursive = true
			case "writable":
				m.BindOptions.ReadOnlyNonRecursive = true
			case "readonly":
				m.BindOptions.ReadOnlyForceRecursive = true
			}
		}
	case types.VolumeTypeVolume:
		if v.Source != "" {
			vol, ok := p.Volumes[v.Source]
			if !ok {
				return mount.Mount{}, Errorf(KindInvalid, "volume %s is not defined in the project's volumes", v.Source)
			}
			m.Source = vol.Name
		}
		if v.Volume != nil {
			m.VolumeOptions = &mount.VolumeOptions{NoCopy: v.Volume.NoCopy, Subpath: v.Volume.Subpath, Labels: v.Volume.Labels}
		}
	case types.VolumeTypeTmpfs:
		if v.Tmpfs != nil {
			m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: fileMode(v.Tmpfs.Mode)}
		}
	}
	return m, nil
}

func bindNeedsMountAPI(b *types.ServiceVolumeBind) bool {
	return b != nil && (!bool(b.CreateHostPath) || b.Propagation != "" || b.Recursive != "")
}

func volumeNeedsMountAPI(v *types.ServiceVolumeVolume) bool {
	return v != nil && (len(v.Labels) > 0 || v.Subpath != "" || v.NoCopy)
}

// bindString is the legacy "src:dst:opts" form the Engine accepts in HostConfig.Binds.
func bindString(src string, v *types.ServiceVolumeConfig) string {
	opts := []string{"rw"}
	if v.ReadOnly {
		opts[0] = "ro"
	}
	if v.Bind != nil && v.Bind.SELinux != "" {
		opts = append(opts, v.Bind.SELinux)
	}
	if v.Bind != nil && v.Bind.Propagation != "" {
		opts = append(opts, v.Bind.Propagation)
	}
	if v.Volume != nil && v.Volume.NoCopy {
		opts = append(opts, "nocopy")
	}
	return src + ":" + v.Target + ":" + strings.Join(opts, ",")
}

func envList(env types.MappingWithEquals) []string {
	out := make([]string, 0, len(env))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		if v := env[k]; v != nil {
			out = append(out, k+"="+*v)
		} else {
			out = append(out, k)
		}
	}
	return out
}

func healthConfig(h *types.HealthCheckConfig) *container.HealthConfig {
	if h == nil {
		return nil
	}
	c := &container.HealthConfig{Test: h.Test}
	if h.Disable {
		c.Test = []string{"NONE"}
	}
	if h.Interval != nil {
		c.Interval = time.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		c.Timeout = time.Duration(*h.Timeout)
	}
	if h.StartPeriod != nil {
		c.StartPeriod = time.Duration(*h.StartPeriod)
	}
	// start_interval needs Engine API 1.44; compose drops it below that, and so does berth.
	if h.Retries != nil {
		c.Retries = int(*h.Retries)
	}
	return c
}

func stopTimeout(d *types.Duration) *int {
	if d == nil {
		return nil
	}
	secs := int(time.Duration(*d).Seconds())
	return &secs
}

func restartPolicy(s types.ServiceConfig) container.RestartPolicy {
	var rp container.RestartPolicy
	if s.Restart != "" {
		name, num, _ := strings.Cut(s.Restart, ":")
		n, _ := strconv.Atoi(num)
		rp = container.RestartPolicy{Name: restartMode(name), MaximumRetryCount: n}
	}
	if s.Deploy != nil && s.Deploy.RestartPolicy != nil {
		var n int
		if s.Deploy.RestartPolicy.MaxAttempts != nil {
			n = int(*s.Deploy.RestartPolicy.MaxAttempts)
		}
		rp = container.RestartPolicy{Name: restartMode(s.Deploy.RestartPolicy.Condition), MaximumRetryCount: n}
	}
	return rp
}

func restartMode(condition string) container.RestartPolicyMode {
	switch condition {
	case "none", "no":
		return container.RestartPolicyDisabled
	case "on-failure":
		return container.RestartPolicyOnFailure
	case "unless-stopped":
		return container.RestartPolicyUnlessStopped
	case "any", "always":
		return container.RestartPolicyAlways
	}
	return container.RestartPolicyMode(condition)
}

func resources(s types.ServiceConfig) container.Resources {
	r := container.Resources{
		Memory:            int64(s.MemLimit),
		MemoryReservation: int64(s.MemReservation),
		NanoCPUs:          int64(s.CPUS * 1e9),
		OomKillDisable:    &s.OomKillDisable,
	}
	if s.PidsLimit != 0 {
		r.PidsLimit = &s.PidsLimit
	}
	if s.Deploy != nil {
		if l := s.Deploy.Resources.Limits; l != nil {
			if l.MemoryBytes != 0 {
				r.Memory = int64(l.MemoryBytes)
			}
			if l.NanoCPUs != 0 {
				r.NanoCPUs = int64(l.NanoCPUs * 1e9)
			}
			if l.Pids != 0 {
				r.PidsLimit = &l.Pids
			}
		}
		if res := s.Deploy.Resources.Reservations; res != nil && res.MemoryBytes != 0 {
			r.MemoryReservation = int64(res.MemoryBytes)
		}
	}
	for name, u := range s.Ulimits {
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		r.Ulimits = append(r.Ulimits, &container.Ulimit{Name: name, Soft: soft, Hard: hard})
	}
	slices.SortFunc(r.Ulimits, func(a, b *container.Ulimit) int { return strings.Compare(a.Name, b.Name) })
	return r
}

func fileMode(m uint32) os.FileMode { return os.FileMode(m) }
