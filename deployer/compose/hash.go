package compose

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
)

// DefaultVersion is the compose release berth imitates for a service none of whose
// containers says which release made it (the newest release berth supports).
const DefaultVersion = "5.6.0"

// The config-hash rules berth knows. A compose release hashes a service as the JSON its
// compose-go version gives the service, and that JSON changed between releases.
const (
	// RuleV2 is the rule of compose v2.40.x: plain encoding/json of compose-go v2.9's
	// types (bind mounts carry "create_host_path":true when the host path is created).
	RuleV2 = "compose v2.40 (compose-go v2.9 JSON)"
	// RuleV5 is the rule of compose v5.x: compose-go v2.10+ types (create_host_path
	// written only when false) with the top-level keys in a frozen order.
	RuleV5 = "compose v5 (compose-go v2.10+ JSON, frozen key order)"
)

// HashRule reports which config-hash rule berth uses for a project managed by the given compose
// release ("2.40.3", "v5.6.0"). Releases berth was not verified against get the nearest known
// rule: every v1/v2 release the v2.40 one, anything newer the v5 one; an empty or unparsable
// version gets the rule of DefaultVersion.
func HashRule(version string) string {
	if composeMajor(version) == 2 || composeMajor(version) == 1 {
		return RuleV2
	}
	return RuleV5
}

// composeMajor is the major number of a compose version, or that of DefaultVersion when
// version does not parse.
func composeMajor(version string) int {
	for _, v := range []string{version, DefaultVersion} {
		v = strings.TrimPrefix(strings.TrimSpace(v), "v")
		major, _, _ := strings.Cut(v, ".")
		if n, err := strconv.Atoi(major); err == nil && n > 0 {
			return n
		}
	}
	return 0
}

// VersionFor picks the compose release whose labels and config hash berth imitates for a
// service: the configured override (COMPOSE_VERSION) if any, else the release that made the
// service's existing containers (a different hash would make that release recreate them), else
// DefaultVersion. The result has no leading "v", like compose's own version label.
func VersionFor(override string, existing []container.Summary) string {
	if v := strings.TrimPrefix(strings.TrimSpace(override), "v"); v != "" {
		return v
	}
	for _, c := range existing {
		if v := c.Labels[LabelVersion]; v != "" {
			return v
		}
	}
	return DefaultVersion
}

// serviceKeyOrder is the top-level key order of the service JSON that compose hashes. It is
// compose-go v2.9's field order, which compose v2.40 gets from plain encoding/json; compose
// v5.6.0 re-emits the keys of its newer compose-go in this order (so that compose-go
// reshuffling its structs does not move every hash), with pull_refresh_after appended; keys
// missing from the list follow, sorted.
var serviceKeyOrder = []string{
	"profiles", "annotations", "attach", "build", "develop", "blkio_config", "cap_add", "cap_drop",
	"cgroup_parent", "cgroup", "cpu_count", "cpu_percent", "cpu_period", "cpu_quota", "cpu_rt_period",
	"cpu_rt_runtime", "cpus", "cpuset", "cpu_shares", "command", "configs", "container_name",
	"credential_spec", "depends_on", "deploy", "device_cgroup_rules", "devices", "dns", "dns_opt",
	"dns_search", "dockerfile", "domainname", "entrypoint", "provider", "environment", "env_file",
	"expose", "extends", "external_links", "extra_hosts", "group_add", "gpus", "hostname",
	"healthcheck", "image", "init", "ipc", "isolation", "labels", "label_file", "links", "logging",
	"log_driver", "log_opt", "mem_limit", "mem_reservation", "memswap_limit", "mem_swappiness",
	"mac_address", "models", "net", "network_mode", "networks", "oom_kill_disable", "oom_score_adj",
	"pid", "pids_limit", "platform", "ports", "privileged", "pull_policy", "read_only", "restart",
	"runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open", "stop_grace_period",
	"stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits", "use_api_socket", "user",
	"userns_mode", "uts", "volume_driver", "volumes", "volumes_from", "working_dir", "pre_start",
	"post_start", "pre_stop", "pull_refresh_after",
}

// ServiceHash computes the com.docker.compose.config-hash label value that compose release
// version writes for s.
func ServiceHash(s types.ServiceConfig, version string) (string, error) {
	raw, err := serviceHashJSON(s, HashRule(version))
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// serviceHashJSON is the JSON compose hashes for s under rule: the service with the fields
// that must not force a recreate cleared, exactly as compose does (build, pull_policy, scale,
// deploy.replicas, depends_on and profiles).
func serviceHashJSON(s types.ServiceConfig, rule string) ([]byte, error) {
	s.Build = nil
	s.PullPolicy = ""
	s.Scale = nil
	if s.Deploy != nil {
		d := *s.Deploy
		d.Replicas = nil
		s.Deploy = &d
	}
	s.DependsOn = nil
	s.Profiles = nil
	if rule == RuleV2 {
		s = withoutNewerFields(s)
	}

	raw, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("encode service %s for its config hash: %w", s.Name, err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, fmt.Errorf("encode service %s for its config hash: %w", s.Name, err)
	}
	if rule == RuleV2 && len(s.Volumes) > 0 {
		if fields["volumes"], err = json.Marshal(volumesV2(s.Volumes)); err != nil {
			return nil, fmt.Errorf("encode service %s for its config hash: %w", s.Name, err)
		}
	}
	return orderedObject(fields, serviceKeyOrder), nil
}

// withoutNewerFields clears what compose-go added after v2.9: compose v2.40 cannot read a
// file that uses them, so they never reach its hash. s is a copy; shared maps are copied
// before they change.
func withoutNewerFields(s types.ServiceConfig) types.ServiceConfig {
	s.PreStart = nil
	s.PullRefreshAfter = ""
	s.Umask = nil
	if len(s.Networks) > 0 {
		nets := make(map[string]*types.ServiceNetworkConfig, len(s.Networks))
		for k, n := range s.Networks {
			if n != nil && n.UseServiceNameAlias != nil {
				c := *n
				c.UseServiceNameAlias = nil
				n = &c
			}
			nets[k] = n
		}
		s.Networks = nets
	}
	return s
}

// volumeV2 and bindV2 are compose-go v2.9's JSON layout of a service volume. The only
// difference from later releases is create_host_path: a plain bool omitted when false, where
// v2.10+ has an opt-out flag omitted when true. So the same bind marshals differently.
type volumeV2 struct {
	Type        string                     `json:"type,omitempty"`
	Source      string                     `json:"source,omitempty"`
	Target      string                     `json:"target,omitempty"`
	ReadOnly    bool                       `json:"read_only,omitempty"`
	Consistency string                     `json:"consistency,omitempty"`
	Bind        *bindV2                    `json:"bind,omitempty"`
	Volume      *types.ServiceVolumeVolume `json:"volume,omitempty"`
	Tmpfs       *types.ServiceVolumeTmpfs  `json:"tmpfs,omitempty"`
	Image       *types.ServiceVolumeImage  `json:"image,omitempty"`
}

type bindV2 struct {
	SELinux        string `json:"selinux,omitempty"`
	Propagation    string `json:"propagation,omitempty"`
	CreateHostPath bool   `json:"create_host_path,omitempty"`
	Recursive      string `json:"recursive,omitempty"`
}

func volumesV2(vols []types.ServiceVolumeConfig) []volumeV2 {
	out := make([]volumeV2, len(vols))
	for i, v := range vols {
		out[i] = volumeV2{
			Type: v.Type, Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly,
			Consistency: v.Consistency, Volume: v.Volume, Tmpfs: v.Tmpfs, Image: v.Image,
		}
		if b := v.Bind; b != nil {
			out[i].Bind = &bindV2{
				SELinux: b.SELinux, Propagation: b.Propagation, Recursive: b.Recursive,
				CreateHostPath: createHostPathV2(b),
			}
		}
	}
	return out
}

// extCreateHostPathV2 marks, on a bind loaded by Load, the create_host_path value
// compose-go v2.9 would have loaded: true only when the file says so (short syntax implies it).
// compose-go v2.10+ defaults it to true for every bind, so the loaded value alone cannot tell
// `bind: {propagation: …}` (v2.9: false) from `bind: {create_host_path: true}`.
const extCreateHostPathV2 = "x-berth-create-host-path-v2"

// bindsAsLoadedBy gives s's binds the create_host_path the compose version that writes the
// container loads: compose v2 (compose-go v2.9) only what the file says, so a long bind without
// it goes through the Mount API with CreateMountpoint off; Engine API 1.44+ keeps that field, so
// the difference shows on newer engines only.
func bindsAsLoadedBy(s types.ServiceConfig, version string) types.ServiceConfig {
	if composeMajor(version) > 2 || !hasBindOptions(s) {
		return s
	}
	s.Volumes = slices.Clone(s.Volumes)
	for i, v := range s.Volumes {
		if v.Bind == nil {
			continue
		}
		b := *v.Bind
		b.CreateHostPath = types.OptOut(createHostPathV2(v.Bind))
		s.Volumes[i].Bind = &b
	}
	return s
}

func createHostPathV2(b *types.ServiceVolumeBind) bool {
	if v, ok := b.Extensions[extCreateHostPathV2].(bool); ok {
		return v
	}
	return bool(b.CreateHostPath)
}

// orderedObject emits a compact JSON object with the keys of fields in the given order; keys
// not in order follow, sorted. Values are kept byte for byte.
func orderedObject(fields map[string]json.RawMessage, order []string) []byte {
	keys := make([]string, 0, len(fields))
	for _, k := range order {
		if _, ok := fields[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range fields {
		if !slices.Contains(order, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	keys = append(keys, rest...)

	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		b.Write(name)
		b.WriteByte(':')
		b.Write(fields[k])
	}
	b.WriteByte('}')
	return b.Bytes()
}

// NetworkHash is the config-hash label compose puts on a network it creates; a later
// `docker compose up` compares it before reusing the network. Both compose releases hash alike.
func NetworkHash(n types.NetworkConfig) (string, error) { return jsonHash(n) }

// VolumeHash is NetworkHash's counterpart for a volume compose creates.
func VolumeHash(v types.VolumeConfig) (string, error) {
	if v.Driver == "" {
		v.Driver = "local"
	}
	return jsonHash(v)
}

func jsonHash(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:]), nil
}

// markBindsAsWritten records on every bind of project (extCreateHostPathV2) whether its file
// sets create_host_path, which compose v2.40 hashes and compose-go v2.10+ no longer tells
// apart. It reads the project's raw model without defaults, where a short-syntax bind says
// create_host_path: true and a long one only what was written.
// It is built from the same spec and options as Load's pass, so it sees the same environment.
func markBindsAsWritten(ctx context.Context, spec Spec, project *types.Project) error {
	if !slices.ContainsFunc(slices.Collect(maps.Values(project.Services)), hasBindOptions) {
		return nil
	}
	var opts *cli.ProjectOptions
	opts, err := projectOptions(spec, cli.WithLoadOptions(func(o *loader.Options) {
		o.SkipDefaultValues = true
		o.SkipValidation = true
		// compose-go's LoadModel interpolates with an empty environment (its ConfigDetails lack
		// the one the options built from Environ, --env-file and .env); LoadProject does not.
		if o.Interpolate != nil {
			o.Interpolate.LookupValue = func(k string) (string, bool) {
				v, ok := opts.Environment[k]
				return v, ok
			}
		}
	}))
	if err != nil {
		return fault.Errorf(fault.Invalid, "compose project in %s: %w", spec.Dir, err)
	}
	model, err := opts.LoadModel(ctx)
	if err != nil {
		return fault.Errorf(fault.Invalid, "load compose project: %w", err)
	}
	services, _ := model["services"].(map[string]any)
	for name, s := range project.Services {
		raw, _ := services[name].(map[string]any)
		written := map[string]bool{} // target → create_host_path as written
		rawVolumes, _ := raw["volumes"].([]any)
		for _, rv := range rawVolumes {
			v, _ := rv.(map[string]any)
			target, _ := v["target"].(string)
			bind, _ := v["bind"].(map[string]any)
			// a bool when written in the file, a types.OptOut when compose-go wrote it for a short bind
			switch create := bind["create_host_path"].(type) {
			case bool:
				written[path.Clean(target)] = create
			case types.OptOut:
				written[path.Clean(target)] = bool(create)
			}
		}
		for i, v := range s.Volumes {
			if v.Bind == nil {
				continue
			}
			b := *v.Bind
			b.Extensions = maps.Clone(b.Extensions)
			if b.Extensions == nil {
				b.Extensions = types.Extensions{}
			}
			b.Extensions[extCreateHostPathV2] = written[path.Clean(v.Target)]
			s.Volumes[i].Bind = &b
		}
	}
	return nil
}

func hasBindOptions(s types.ServiceConfig) bool {
	return slices.ContainsFunc(s.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Bind != nil })
}

// CheckVersion rejects a COMPOSE_VERSION that is not a compose release number such as
// "2.40.3" or "v5.6.0" (a pre-release suffix is allowed); empty means "not set" and passes.
func CheckVersion(version string) error {
	if version == "" {
		return nil
	}
	core, _, _ := strings.Cut(strings.TrimPrefix(version, "v"), "-")
	parts := strings.Split(core, ".")
	ok := len(parts) >= 2 && len(parts) <= 3
	for _, p := range parts {
		if _, err := strconv.ParseUint(p, 10, 32); err != nil {
			ok = false
		}
	}
	if !ok || parts[0] == "0" {
		return fmt.Errorf("COMPOSE_VERSION=%q is not a docker compose release; use its version number, e.g. 2.40.3 or 5.6.0 (`docker compose version --short`)", version)
	}
	return nil
}
