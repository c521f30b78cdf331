package compose

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
)

// CreateSpec is everything ContainerCreate and the NetworkConnect calls after it need.
type CreateSpec struct {
	Config    *container.Config
	Host      *container.HostConfig
	Network   *network.NetworkingConfig
	Secondary map[string]*network.EndpointSettings // network name → endpoint, connected before start
}

// ContainerLabels are the labels of replica n: the user's labels, then compose's own on top.
func ContainerLabels(s types.ServiceConfig, hash, imageID, version string, n int, replaces string) map[string]string {
	labels := map[string]string{}
	maps.Copy(labels, s.Labels)
	maps.Copy(labels, s.CustomLabels)
	labels[LabelVersion] = version
	labels[LabelImage] = imageID
	labels[LabelConfigHash] = hash
	labels[LabelNumber] = strconv.Itoa(n)
	var deps []string
	for name, d := range s.DependsOn {
		deps = append(deps, fmt.Sprintf("%s:%s:%t", name, d.Condition, d.Restart))
	}
	slices.Sort(deps)
	labels[LabelDependsOn] = strings.Join(deps, ",")
	if replaces != "" {
		labels[LabelReplace] = replaces
	}
	return labels
}

// NewCreateSpec mirrors compose's container configuration for replica n of s. inherited are
// the mounts of the container being replaced, so its anonymous volumes carry over.
func NewCreateSpec(p *types.Project, s types.ServiceConfig, n int, labels map[string]string, imageVolumes map[string]struct{}, inherited []container.MountPoint) (CreateSpec, error) {
	s = bindsAsLoadedBy(s, labels[LabelVersion])
	exposed, bindings, err := portSpecs(s)
	if err != nil {
		return CreateSpec{}, err
	}
	host, err := hostConfig(p, s, bindings, imageVolumes, inherited)
	if err != nil {
		return CreateSpec{}, err
	}
	spec := CreateSpec{Config: containerConfig(s, labels, exposed), Host: host}
	if s.NetworkMode != "" {
		// network_mode (host, none, container:<id>; service:x was resolved to container:<id>
		// before hashing) replaces every network attachment, as in compose.
		host.NetworkMode = container.NetworkMode(s.NetworkMode)
		return spec, nil
	}
	if err := networkSpecs(p, s, n, &spec); err != nil {
		return CreateSpec{}, err
	}
	return spec, nil
}

// containerConfig is the container configuration compose sends for s.
func containerConfig(s types.ServiceConfig, labels map[string]string, exposed network.PortSet) *container.Config {
	return &container.Config{
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
		// compose passes network_mode: disabled this way; CheckSupported refuses it today.
		NetworkDisabled: s.NetworkMode == "disabled",
		Env:             envList(s.Environment),
		Healthcheck:     healthConfig(s.HealthCheck),
		StopTimeout:     stopTimeout(s.StopGracePeriod),
	}
}

// hostConfig is the host configuration compose sends for s, with its ports bound as given;
// the network mode is left to the caller.
func hostConfig(p *types.Project, s types.ServiceConfig, bindings network.PortMap, imageVolumes map[string]struct{}, inherited []container.MountPoint) (*container.HostConfig, error) {
	binds, mounts, err := volumeSpecs(p, s, imageVolumes, inherited)
	if err != nil {
		return nil, err
	}
	var dns []netip.Addr
	for _, d := range s.DNS {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "service %s: dns %q is not an IP address", s.Name, d)
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
		return nil, err
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
	return host, nil
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
