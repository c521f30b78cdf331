package socketproxy

import (
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// maxInspectedBody bounds a request body the proxy reads to inspect; a compose service's
// create body is a few KiB.
const maxInspectedBody = 4 << 20

// Grant is one power a container create may use only when the proxy's operator allows it
// for the service (SOCKET_PROXY_ALLOW).
type Grant string

// The grants, each a way out of a container onto the host.
const (
	GrantPrivileged     Grant = "privileged"      // privileged mode, unconfined security options, unmasked /proc
	GrantHostNamespaces Grant = "host-namespaces" // pid, ipc, network or userns of the host (or pid of another container)
	GrantCapabilities   Grant = "capabilities"    // capabilities beyond Docker's default set
	GrantDevices        Grant = "devices"         // host devices, device requests and cgroup rules
	GrantDockerSocket   Grant = "docker-socket"   // a bind of the Docker socket or a folder holding it
	GrantHostRoot       Grant = "host-root"       // a bind of the host's /
)

var grants = []Grant{GrantPrivileged, GrantHostNamespaces, GrantCapabilities, GrantDevices, GrantDockerSocket, GrantHostRoot}

// safeCapabilities are Docker's default capabilities: adding one again changes nothing.
var safeCapabilities = []string{"CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID",
	"SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE"}

// Allowances are the grants per compose service, keyed "project/service".
type Allowances map[string][]Grant

// ParseAllowances reads SOCKET_PROXY_ALLOW: space- or comma-separated entries
// project/service:grant[+grant…], e.g. "edge/traefik:docker-socket mon/cadvisor:privileged+devices".
func ParseAllowances(s string) (Allowances, error) {
	out := Allowances{}
	for _, entry := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' }) {
		svc, list, ok := strings.Cut(entry, ":")
		project, service, okSvc := strings.Cut(svc, "/")
		if !ok || !okSvc || project == "" || service == "" || list == "" {
			return nil, fmt.Errorf("%q is not project/service:grant, e.g. edge/traefik:docker-socket", entry)
		}
		for _, g := range strings.Split(list, "+") {
			if !slices.Contains(grants, Grant(g)) {
				return nil, fmt.Errorf("%q: unknown grant %q; the grants are %v", entry, g, grants)
			}
			out[svc] = append(out[svc], Grant(g))
		}
	}
	return out, nil
}

// allows says whether service ("project/service") holds g.
func (a Allowances) allows(service string, g Grant) bool { return slices.Contains(a[service], g) }

// mount is a bind or volume mount in a create body (HostConfig.Mounts, a service's Mounts).
type mount struct {
	Type          string
	Source        string
	VolumeOptions *struct {
		DriverConfig *struct{ Options map[string]string }
	}
}

// containerCreate is the part of POST /containers/create's body the proxy judges. Field names
// match the engine's, which decodes JSON the same case-insensitive way.
type containerCreate struct {
	Labels     map[string]string
	HostConfig struct {
		Privileged                                 bool
		PidMode, IpcMode, NetworkMode, UsernsMode  string
		CapAdd                                     []string
		Devices, DeviceRequests, DeviceCgroupRules []json.RawMessage
		Binds                                      []string
		Mounts                                     []mount
		SecurityOpt                                []string
		MaskedPaths, ReadonlyPaths                 *[]string
	}
}

// refusal is one forbidden use found in a body, with the grant that would allow it.
type refusal struct {
	what  string
	grant Grant
}

// judgeCreate returns the first use in a container create body that service has no grant
// for; a body that is not JSON is refused, since the engine would refuse it too.
func (p Policy) judgeCreate(body []byte) string {
	var c containerCreate
	if err := json.Unmarshal(body, &c); err != nil {
		return "the container create body is not a JSON object: " + err.Error()
	}
	project, service := c.Labels["com.docker.compose.project"], c.Labels["com.docker.compose.service"]
	svc := project + "/" + service
	for _, r := range p.createRefusals(c) {
		if project != "" && service != "" && p.Allow.allows(svc, r.grant) {
			continue
		}
		if project == "" || service == "" {
			return fmt.Sprintf("%s is refused for a container that is no compose service; only a compose service can be granted it (SOCKET_PROXY_ALLOW=project/service:%s)", r.what, r.grant)
		}
		return fmt.Sprintf("%s is refused; set SOCKET_PROXY_ALLOW=%s:%s on the socket proxy to allow it for this service", r.what, svc, r.grant)
	}
	return ""
}

// createRefusals lists every forbidden use in c, each with its grant.
func (p Policy) createRefusals(c containerCreate) []refusal {
	h := c.HostConfig
	var out []refusal
	add := func(cond bool, what string, g Grant) {
		if cond {
			out = append(out, refusal{what, g})
		}
	}
	add(h.Privileged, "privileged mode", GrantPrivileged)
	for _, o := range h.SecurityOpt {
		o = strings.ToLower(strings.ReplaceAll(o, ":", "="))
		add(strings.HasSuffix(o, "=unconfined") || o == "label=disable", "security option "+o, GrantPrivileged)
	}
	add(h.MaskedPaths != nil || h.ReadonlyPaths != nil, "setting MaskedPaths or ReadonlyPaths (unmasking /proc)", GrantPrivileged)
	add(h.PidMode == "host" || strings.HasPrefix(h.PidMode, "container:"), "pid: "+h.PidMode, GrantHostNamespaces)
	add(h.IpcMode == "host", "ipc: host", GrantHostNamespaces)
	add(h.NetworkMode == "host", "network_mode: host", GrantHostNamespaces)
	add(h.UsernsMode == "host", "userns_mode: host", GrantHostNamespaces)
	for _, c := range h.CapAdd {
		name := strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		add(!slices.Contains(safeCapabilities, name), "cap_add "+c, GrantCapabilities)
	}
	add(len(h.Devices)+len(h.DeviceRequests)+len(h.DeviceCgroupRules) > 0, "host devices", GrantDevices)
	for _, b := range h.Binds {
		src, _, _ := strings.Cut(b, ":")
		out = append(out, p.hostPathRefusals(src)...)
	}
	for _, m := range h.Mounts {
		out = append(out, p.mountRefusals(m)...)
	}
	return out
}

// mountRefusals judges one mount: a bind's source, or a local volume that binds a host path.
func (p Policy) mountRefusals(m mount) []refusal {
	switch {
	case strings.EqualFold(m.Type, "bind"):
		return p.hostPathRefusals(m.Source)
	case m.VolumeOptions != nil && m.VolumeOptions.DriverConfig != nil:
		return p.volumeRefusals(m.VolumeOptions.DriverConfig.Options)
	}
	return nil
}

// volumeRefusals judges a local volume's driver options: o=bind with a device is a bind.
func (p Policy) volumeRefusals(opts map[string]string) []refusal {
	if dev := opts["device"]; dev != "" && strings.Contains(opts["o"], "bind") {
		return p.hostPathRefusals(dev)
	}
	return nil
}

// hostPathRefusals judges a host path that would be bound into a container: the host's / and
// the Docker socket or any folder that holds it.
func (p Policy) hostPathRefusals(src string) []refusal {
	if !strings.HasPrefix(src, "/") {
		return nil // a named volume
	}
	clean := path.Clean(src)
	if clean == "/" {
		return []refusal{{"a bind of the host's /", GrantHostRoot}}
	}
	for _, sock := range p.sockets() {
		if clean == sock || strings.HasPrefix(sock, clean+"/") || path.Base(clean) == "docker.sock" {
			return []refusal{{"a bind of the Docker socket (" + src + ")", GrantDockerSocket}}
		}
	}
	return nil
}

// sockets are the paths the Docker socket is known by on the host.
func (p Policy) sockets() []string {
	out := []string{"/var/run/docker.sock", "/run/docker.sock"}
	if p.Socket != "" && !slices.Contains(out, path.Clean(p.Socket)) {
		out = append(out, path.Clean(p.Socket))
	}
	return out
}

// judgeVolumeCreate refuses a local volume that binds the host's / or the socket.
func (p Policy) judgeVolumeCreate(body []byte) string {
	var v struct{ DriverOpts map[string]string }
	if err := json.Unmarshal(body, &v); err != nil {
		return "the volume create body is not a JSON object: " + err.Error()
	}
	if rs := p.volumeRefusals(v.DriverOpts); len(rs) > 0 {
		return rs[0].what + " through a volume is refused; bind it in the service that needs it and grant that service " + string(rs[0].grant) + " with SOCKET_PROXY_ALLOW"
	}
	return ""
}
