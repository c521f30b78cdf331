package deployer

import (
	"bytes"
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

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
)

// supportedKeys are the compose service attributes berth turns into a container exactly as
// docker compose does (README "Compose fidelity" lists them). A service using any other
// attribute is refused rather than deployed with that attribute silently dropped.
var supportedKeys = map[string]bool{
	"annotations": true, "attach": true, "blkio_config": true, "cap_add": true, "cap_drop": true,
	"cgroup": true, "cgroup_parent": true, "command": true, "configs": true, "container_name": true,
	"cpu_count": true, "cpu_percent": true, "cpu_period": true, "cpu_quota": true, "cpu_rt_period": true,
	"cpu_rt_runtime": true, "cpu_shares": true, "cpus": true, "cpuset": true, "depends_on": true,
	"deploy": true, "develop": true, "device_cgroup_rules": true, "devices": true, "dns": true,
	"dns_opt": true, "dns_search": true, "domainname": true, "entrypoint": true, "env_file": true,
	"environment": true, "expose": true, "extends": true, "extra_hosts": true, "group_add": true,
	"healthcheck": true, "hostname": true, "image": true, "init": true, "ipc": true, "isolation": true,
	"label_file": true, "labels": true, "logging": true, "mem_limit": true, "mem_reservation": true,
	"mem_swappiness": true, "memswap_limit": true, "network_mode": true, "networks": true,
	"oom_kill_disable": true, "oom_score_adj": true, "pid": true, "pids_limit": true, "ports": true,
	"privileged": true, "profiles": true, "pull_policy": true, "pull_refresh_after": true,
	"read_only": true, "restart": true, "runtime": true, "scale": true, "secrets": true,
	"security_opt": true, "shm_size": true, "stdin_open": true, "stop_grace_period": true,
	"stop_signal": true, "storage_opt": true, "sysctls": true, "tmpfs": true, "tty": true,
	"ulimits": true, "user": true, "userns_mode": true, "uts": true, "volume_driver": true,
	"volumes": true, "volumes_from": true, "working_dir": true,
}

// refusedBecause says why berth refuses the attributes it knows it cannot reproduce, so the
// error tells the user more than "unsupported".
var refusedBecause = map[string]string{
	"build":           "berth deploys pushed images only",
	"links":           "legacy links need the linked containers' names at create time; use networks (every service is reachable by its name)",
	"external_links":  "legacy links; use an external network",
	"mac_address":     "needs Engine API 1.44 per network",
	"gpus":            "GPU device requests are not reproduced yet",
	"platform":        "platform-specific pulls are not reproduced yet",
	"post_start":      "lifecycle hooks run through exec and are not reproduced yet",
	"pre_stop":        "lifecycle hooks run through exec and are not reproduced yet",
	"pre_start":       "lifecycle hooks run in extra containers and are not reproduced yet",
	"use_api_socket":  "compose copies the CLI's credentials into the container; berth has none to give",
	"credential_spec": "Windows containers only",
	"provider":        "provider services are run by plugins, not as containers",
	"models":          "model runner services are not containers",
	"log_driver":      "legacy attribute; use logging.driver",
	"log_opt":         "legacy attribute; use logging.options",
}

// checkSupported refuses a service that sets an attribute berth cannot reproduce exactly.
func checkSupported(p *types.Project, s types.ServiceConfig) error {
	if s.Build != nil {
		return fault.Errorf(fault.Invalid, "service %s has a build section; berth deploys pushed images only (remove build: or deploy it with docker compose)", s.Name)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode service %s: %w", s.Name, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return fmt.Errorf("decode service %s: %w", s.Name, err)
	}
	var unsupported []string
	refuse := func(what, why string) {
		if why != "" {
			what += " (" + why + ")"
		}
		unsupported = append(unsupported, what)
	}
	for k := range fields {
		if !supportedKeys[k] {
			refuse(k, refusedBecause[k])
		}
	}
	if d := s.Deploy; d != nil {
		if len(d.Placement.Constraints)+len(d.Placement.Preferences) > 0 {
			refuse("deploy.placement", "Swarm only")
		}
		if r := d.Resources.Reservations; r != nil && (len(r.Devices) > 0 || len(r.GenericResources) > 0) {
			refuse("deploy.resources.reservations.devices", "device requests are not reproduced yet")
		}
	}
	for key, n := range s.Networks {
		if n != nil && n.MacAddress != "" {
			refuse("networks."+key+".mac_address", "needs Engine API 1.44")
		}
		if n != nil && n.InterfaceName != "" {
			refuse("networks."+key+".interface_name", "needs Engine API 1.49")
		}
	}
	if s.NetworkMode == "disabled" {
		refuse("network_mode: disabled", "use network_mode: none")
	}
	for _, v := range s.Volumes {
		switch v.Type {
		case types.VolumeTypeBind, types.VolumeTypeVolume, types.VolumeTypeTmpfs:
		default:
			refuse("volumes (type "+v.Type+")", "")
		}
	}
	for _, ref := range s.Secrets {
		def, ok := p.Secrets[ref.Source]
		switch {
		case !ok:
			refuse("secrets."+ref.Source, "not defined in the project")
		case def.File == "":
			refuse("secrets."+ref.Source, "only file-based secrets are reproduced; compose copies environment secrets in at start")
		}
	}
	for _, ref := range s.Configs {
		def, ok := p.Configs[ref.Source]
		switch {
		case !ok:
			refuse("configs."+ref.Source, "not defined in the project")
		case def.File == "":
			refuse("configs."+ref.Source, "only file-based configs are reproduced; compose copies content and environment configs in at start")
		}
	}
	if len(unsupported) > 0 {
		slices.Sort(unsupported)
		return fault.Errorf(fault.Invalid, "service %s uses %s, which berth does not support; nothing was changed (deploy it with docker compose, or remove the attribute)",
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
		// compose passes network_mode: disabled this way; checkSupported refuses it today.
		NetworkDisabled: s.NetworkMode == "disabled",
		Env:             envList(s.Environment),
		Healthcheck:     healthConfig(s.HealthCheck),
		StopTimeout:     stopTimeout(s.StopGracePeriod),
	}
	binds, mounts, err := volumeSpecs(p, s, imageVolumes, inherited)
	if err != nil {
		return createSpec{}, err
	}
	var dns []netip.Addr
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return createSpec{}, fault.Errorf(fault.Invalid, "service %s: dns %q is not an IP address", s.Name, d)
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
	securityOpts, unconfined, err := securityOptions(p, s)
	if err != nil {
		return createSpec{}, err
	}
	host := &container.HostConfig{
		Annotations:    s.Annotations,
		Binds:          binds,
		Mounts:         mounts,
		CapAdd:         s.CapAdd,
		CapDrop:        s.CapDrop,
		Init:           s.Init,
		IpcMode:        container.IpcMode(s.Ipc),
		CgroupnsMode:   container.CgroupnsMode(s.Cgroup),
		ReadonlyRootfs: s.ReadOnly,
		RestartPolicy:  restartPolicy(s),
		ShmSize:        int64(s.ShmSize),
		Sysctls:        s.Sysctls,
		PortBindings:   bindings,
		Resources:      resources(s),
		VolumeDriver:   s.VolumeDriver,
		VolumesFrom:    s.VolumesFrom,
		DNS:            dns,
		DNSSearch:      s.DNSSearch,
		DNSOptions:     s.DNSOpts,
		ExtraHosts:     s.ExtraHosts.AsList(":"),
		SecurityOpt:    securityOpts,
		StorageOpt:     s.StorageOpt,
		UsernsMode:     container.UsernsMode(s.UserNSMode),
		UTSMode:        container.UTSMode(s.Uts),
		Privileged:     s.Privileged,
		PidMode:        container.PidMode(s.Pid),
		Tmpfs:          tmpfs,
		Isolation:      container.Isolation(s.Isolation),
		Runtime:        s.Runtime,
		LogConfig:      logConfig,
		GroupAdd:       s.GroupAdd,
		OomScoreAdj:    int(s.OomScoreAdj),
	}
	if unconfined {
		host.MaskedPaths = []string{}
		host.ReadonlyPaths = []string{}
	}
	spec := createSpec{Config: cfg, Host: host}
	if s.NetworkMode != "" {
		// network_mode (host, none, container:<id>; service:x was resolved to container:<id>
		// before hashing) replaces every network attachment, as in compose.
		host.NetworkMode = container.NetworkMode(s.NetworkMode)
		return spec, nil
	}
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
	primary, ok := p.Networks[keys[0]]
	if !ok {
		return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, keys[0])
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
			return fault.Errorf(fault.Invalid, "service %s uses network %s, which the project does not define", s.Name, key)
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
	// File-based secrets and configs are read-only binds, unless a volume already uses the target.
	for _, m := range secretAndConfigMounts(p, s) {
		if _, ok := byTarget[m.Target]; !ok {
			byTarget[m.Target] = m
		}
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

// secretAndConfigMounts are compose's binds for file-based secrets (under /run/secrets) and
// configs (under /); checkSupported has refused every other kind.
func secretAndConfigMounts(p *types.Project, s types.ServiceConfig) []mount.Mount {
	var out []mount.Mount
	target := func(dir, source, target string) string {
		switch {
		case target == "":
			return dir + source
		case !strings.HasPrefix(target, "/"):
			return dir + target
		}
		return target
	}
	for _, ref := range s.Secrets {
		// compose asks for the Mount API with create_host_path off, hence the empty bind options.
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: absPath(p.Secrets[ref.Source].File), Target: target("/run/secrets/", ref.Source, ref.Target),
			ReadOnly: true, BindOptions: &mount.BindOptions{}})
	}
	for _, ref := range s.Configs {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: absPath(p.Configs[ref.Source].File), Target: target("/", ref.Source, ref.Target), ReadOnly: true})
	}
	return out
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func serviceMount(p *types.Project, v types.ServiceVolumeConfig) (mount.Mount, error) {
	m := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly, Consistency: mount.Consistency(v.Consistency)}
	switch v.Type {
	case types.VolumeTypeBind:
		if !filepath.IsAbs(v.Source) {
			return mount.Mount{}, fault.Errorf(fault.Invalid, "bind mount source %q is not absolute", v.Source)
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
				return mount.Mount{}, fault.Errorf(fault.Invalid, "volume %s is not defined in the project's volumes", v.Source)
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

// resources maps every cgroup and device attribute the way compose's getDeployResources does.
func resources(s types.ServiceConfig) container.Resources {
	r := container.Resources{
		CgroupParent:       s.CgroupParent,
		Memory:             int64(s.MemLimit),
		MemorySwap:         int64(s.MemSwapLimit),
		MemoryReservation:  int64(s.MemReservation),
		OomKillDisable:     &s.OomKillDisable,
		CPUCount:           s.CPUCount,
		CPUPeriod:          s.CPUPeriod,
		CPUQuota:           s.CPUQuota,
		CPURealtimePeriod:  s.CPURTPeriod,
		CPURealtimeRuntime: s.CPURTRuntime,
		CPUShares:          s.CPUShares,
		NanoCPUs:           int64(s.CPUS * 1e9),
		CPUPercent:         int64(s.CPUPercent * 100),
		CpusetCpus:         s.CPUSet,
		DeviceCgroupRules:  s.DeviceCgroupRules,
	}
	if s.MemSwappiness != 0 {
		v := int64(s.MemSwappiness)
		r.MemorySwappiness = &v
	}
	if s.PidsLimit != 0 {
		r.PidsLimit = &s.PidsLimit
	}
	if b := s.BlkioConfig; b != nil {
		r.BlkioWeight = b.Weight
		for _, w := range b.WeightDevice {
			r.BlkioWeightDevice = append(r.BlkioWeightDevice, &blkiodev.WeightDevice{Path: w.Path, Weight: w.Weight})
		}
		throttle := func(in []types.ThrottleDevice) []*blkiodev.ThrottleDevice {
			var out []*blkiodev.ThrottleDevice
			for _, t := range in {
				out = append(out, &blkiodev.ThrottleDevice{Path: t.Path, Rate: uint64(t.Rate)})
			}
			return out
		}
		r.BlkioDeviceReadBps = throttle(b.DeviceReadBps)
		r.BlkioDeviceReadIOps = throttle(b.DeviceReadIOps)
		r.BlkioDeviceWriteBps = throttle(b.DeviceWriteBps)
		r.BlkioDeviceWriteIOps = throttle(b.DeviceWriteIOps)
	}
	if s.Deploy != nil {
		if l := s.Deploy.Resources.Limits; l != nil {
			if l.MemoryBytes != 0 {
				r.Memory = int64(l.MemoryBytes)
			}
			if l.NanoCPUs != 0 {
				r.NanoCPUs = int64(l.NanoCPUs * 1e9)
			}
			if l.Pids > 0 {
				r.PidsLimit = &l.Pids
			}
		}
		// CPU reservations are a Swarm notion; compose maps only the memory one.
		if res := s.Deploy.Resources.Reservations; res != nil && res.MemoryBytes != 0 {
			r.MemoryReservation = int64(res.MemoryBytes)
		}
	}
	for _, d := range s.Devices {
		r.Devices = append(r.Devices, container.DeviceMapping{PathOnHost: d.Source, PathInContainer: d.Target, CgroupPermissions: d.Permissions})
	}
	for name, u := range s.Ulimits {
		soft, hard := u.Single, u.Single
		if u.Soft != 0 {
			soft = u.Soft
		}
		if u.Hard != 0 {
			hard = u.Hard
		}
		r.Ulimits = append(r.Ulimits, &container.Ulimit{Name: name, Soft: int64(soft), Hard: int64(hard)})
	}
	slices.SortFunc(r.Ulimits, func(a, b *container.Ulimit) int { return strings.Compare(a.Name, b.Name) })
	return r
}

// securityOptions passes security_opt through as compose does: a seccomp profile file is read
// and inlined, and systempaths=unconfined becomes empty masked and read-only path lists.
func securityOptions(p *types.Project, s types.ServiceConfig) ([]string, bool, error) {
	var out []string
	unconfined := false
	for _, opt := range s.SecurityOpt {
		if opt == "systempaths=unconfined" {
			unconfined = true
			continue
		}
		key, val, ok := strings.Cut(opt, "=")
		if !ok && key != "no-new-privileges" {
			if key, val, ok = strings.Cut(opt, ":"); !ok {
				return nil, false, fault.Errorf(fault.Invalid, "service %s: invalid security_opt %q", s.Name, opt)
			}
		}
		if key == "seccomp" && val != "unconfined" && val != "builtin" {
			raw, err := os.ReadFile(p.RelativePath(val))
			if err != nil {
				return nil, false, fault.Errorf(fault.Invalid, "service %s: seccomp profile: %w", s.Name, err)
			}
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				return nil, false, fault.Errorf(fault.Invalid, "service %s: seccomp profile %s: %w", s.Name, val, err)
			}
			out = append(out, "seccomp="+b.String())
			continue
		}
		out = append(out, opt)
	}
	return out, unconfined, nil
}

func fileMode(m uint32) os.FileMode { return os.FileMode(m) }
