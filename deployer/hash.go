package deployer

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/compose-spec/compose-go/v2/types"
)

// serviceKeyOrder is the order of ServiceConfig's top-level JSON keys in compose-go v2.9.x.
// compose v2.40 hashes plain json.Marshal output of that struct; compose v5 re-emits the keys
// of newer compose-go in this same frozen order (so the hash does not move when compose-go
// reshuffles its structs), with the keys compose-go added since slotted in.
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
	"pid", "pids_limit", "platform", "ports", "privileged", "pull_policy", "pull_refresh_after",
	"read_only", "restart", "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open",
	"stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits",
	"use_api_socket", "user", "userns_mode", "uts", "volume_driver", "volumes", "volumes_from",
	"working_dir", "pre_start", "post_start", "pre_stop",
}

// serviceHash computes the com.docker.compose.config-hash label value for s: sha256 of the
// service's JSON with the fields that must not force a recreate cleared, exactly as compose
// does (build, pull_policy, scale, deploy.replicas, depends_on and profiles).
func serviceHash(s types.ServiceConfig) (string, error) {
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

	raw, err := json.Marshal(s)
	if err != nil {
		return "", fmt.Errorf("encode service %s for its config hash: %w", s.Name, err)
	}
	ordered, err := reorderKeys(raw, serviceKeyOrder)
	if err != nil {
		return "", fmt.Errorf("encode service %s for its config hash: %w", s.Name, err)
	}
	sum := sha256.Sum256(ordered)
	return hex.EncodeToString(sum[:]), nil
}

// reorderKeys re-emits a compact JSON object with its top-level keys in the given order;
// keys not in order follow, sorted. Values are kept byte for byte.
func reorderKeys(raw []byte, order []string) ([]byte, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, err
	}
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
	return b.Bytes(), nil
}

// networkHash and volumeHash are the config-hash labels compose puts on the networks and
// volumes it creates; a later `docker compose up` compares them before reusing the resource.
func networkHash(n types.NetworkConfig) (string, error) { return jsonHash(n) }

func volumeHash(v types.VolumeConfig) (string, error) {
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
