package compose

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
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

// CheckSupported refuses a service that sets an attribute berth cannot reproduce exactly.
func CheckSupported(p *types.Project, s types.ServiceConfig) error {
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
	for k := range fields {
		if !supportedKeys[k] {
			unsupported = append(unsupported, refusal(k, refusedBecause[k]))
		}
	}
	unsupported = append(unsupported, unsupportedValues(p, s)...)
	if len(unsupported) > 0 {
		slices.Sort(unsupported)
		return fault.Errorf(fault.Invalid, "service %s uses %s, which berth does not support; nothing was changed (deploy it with docker compose, or remove the attribute)",
			s.Name, strings.Join(unsupported, ", "))
	}
	return nil
}

// refusal names what is refused, with why when there is a reason to give.
func refusal(what, why string) string {
	if why != "" {
		what += " (" + why + ")"
	}
	return what
}

// unsupportedValues lists the values of supported attributes that berth cannot reproduce.
func unsupportedValues(p *types.Project, s types.ServiceConfig) []string {
	var unsupported []string
	refuse := func(what, why string) { unsupported = append(unsupported, refusal(what, why)) }
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
	return unsupported
}
