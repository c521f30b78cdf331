package socketproxy

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"testing"
)

// compose labels a create body as compose service p/svc.
func compose(svc, hostConfig string) string {
	return `{"Image":"acme/web:1","Labels":{"com.docker.compose.project":"p","com.docker.compose.service":"` + svc + `"},"HostConfig":` + hostConfig + `}`
}

func TestFilterBodies(t *testing.T) {
	allow, err := ParseAllowances("p/edge:docker-socket, p/mon:privileged+devices")
	if err != nil {
		t.Fatal(err)
	}
	pol := Policy{Allow: allow, Socket: "/srv/docker/docker.sock"}
	cases := []struct {
		name, method, target, body string
		reason                     string // "" when allowed, else a fragment of the refusal
	}{
		{"pull", "POST", "/v1.45/images/create?fromImage=acme%2Fweb&tag=1", "", ""},
		{"import by body", "POST", "/v1.45/images/create?tag=evil", "fromSrc=-", "only a pull"},
		{"import by body with fromImage", "POST", "/v1.45/images/create?fromImage=acme%2Fweb", "fromSrc=-&repo=x", "carries no body"},
		{"empty fromSrc", "POST", "/v1.45/images/create?fromImage=a&fromSrc=", "", "fromSrc"},
		{"plain create", "POST", "/v1.45/containers/create?name=p-web-1", compose("web", `{"Binds":["/srv/data:/data","data:/x"],"CapAdd":["NET_BIND_SERVICE","CAP_CHOWN"],"NetworkMode":"p_default"}`), ""},
		{"privileged", "POST", "/v1.45/containers/create", compose("web", `{"Privileged":true}`), "SOCKET_PROXY_ALLOW=p/web:privileged"},
		{"privileged, lower case", "POST", "/v1.45/containers/create", compose("web", `{"privileged":true}`), "privileged mode"},
		{"privileged, granted", "POST", "/v1.45/containers/create", compose("mon", `{"Privileged":true,"Devices":[{"PathOnHost":"/dev/kmsg"}]}`), ""},
		{"grant is per service", "POST", "/v1.45/containers/create", compose("mon", `{"Binds":["/var/run/docker.sock:/s"]}`), "p/mon:docker-socket"},
		{"seccomp unconfined", "POST", "/v1.45/containers/create", compose("web", `{"SecurityOpt":["seccomp:unconfined"]}`), "security option"},
		{"unmasked proc", "POST", "/v1.45/containers/create", compose("web", `{"MaskedPaths":[],"ReadonlyPaths":[]}`), "MaskedPaths"},
		{"host pid", "POST", "/v1.45/containers/create", compose("web", `{"PidMode":"host"}`), "host-namespaces"},
		{"another container's pid", "POST", "/v1.45/containers/create", compose("web", `{"PidMode":"container:db"}`), "host-namespaces"},
		{"host ipc", "POST", "/v1.45/containers/create", compose("web", `{"IpcMode":"host"}`), "ipc: host"},
		{"host network", "POST", "/v1.45/containers/create", compose("web", `{"NetworkMode":"host"}`), "network_mode: host"},
		{"host userns", "POST", "/v1.45/containers/create", compose("web", `{"UsernsMode":"host"}`), "userns_mode"},
		{"sys_admin", "POST", "/v1.45/containers/create", compose("web", `{"CapAdd":["SYS_ADMIN"]}`), "p/web:capabilities"},
		{"all caps", "POST", "/v1.45/containers/create", compose("web", `{"CapAdd":["ALL"]}`), "cap_add ALL"},
		{"device", "POST", "/v1.45/containers/create", compose("web", `{"Devices":[{"PathOnHost":"/dev/sda"}]}`), "p/web:devices"},
		{"gpu", "POST", "/v1.45/containers/create", compose("web", `{"DeviceRequests":[{"Count":-1}]}`), "devices"},
		{"root bind", "POST", "/v1.45/containers/create", compose("web", `{"Binds":["/:/host"]}`), "p/web:host-root"},
		{"root bind, unclean", "POST", "/v1.45/containers/create", compose("web", `{"Binds":["/etc/..//:/host:ro"]}`), "host-root"},
		{"socket bind", "POST", "/v1.45/containers/create", compose("web", `{"Binds":["/var/run/docker.sock:/var/run/docker.sock"]}`), "p/web:docker-socket"},
		{"socket folder", "POST", "/v1.45/containers/create", compose("web", `{"Binds":["/run:/r"]}`), "docker-socket"},
		{"configured socket", "POST", "/v1.45/containers/create", compose("web", `{"Binds":["/srv/docker:/d"]}`), "docker-socket"},
		{"socket granted", "POST", "/v1.45/containers/create", compose("edge", `{"Binds":["/var/run/docker.sock:/var/run/docker.sock:ro"]}`), ""},
		{"socket mount", "POST", "/v1.45/containers/create", compose("web", `{"Mounts":[{"Type":"bind","Source":"/run/docker.sock","Target":"/s"}]}`), "docker-socket"},
		{"root via volume mount", "POST", "/v1.45/containers/create", compose("web", `{"Mounts":[{"Type":"volume","Target":"/h","VolumeOptions":{"DriverConfig":{"Options":{"o":"bind","device":"/"}}}}]}`), "host-root"},
		{"not compose", "POST", "/v1.45/containers/create", `{"Image":"x","HostConfig":{"Privileged":true}}`, "no compose service"},
		{"not JSON", "POST", "/v1.45/containers/create", `nope`, "not a JSON object"},
		{"start without body", "POST", "/v1.45/containers/abc/start", "", ""},
		{"start with host config", "POST", "/v1.45/containers/abc/start", `{"Privileged":true}`, "carries no body"},
		{"plain volume", "POST", "/v1.45/volumes/create", `{"Name":"p_data","DriverOpts":{"type":"none","o":"bind","device":"/srv/data"}}`, ""},
		{"root volume", "POST", "/v1.45/volumes/create", `{"Name":"p_x","DriverOpts":{"type":"none","o":"bind","device":"/"}}`, "host-root"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://docker"+c.target, strings.NewReader(c.body))
		d := pol.filter(r)
		if (d.reason == "") != (c.reason == "") || !strings.Contains(d.reason, c.reason) {
			t.Errorf("%s: reason %q, want %q", c.name, d.reason, c.reason)
		}
	}
	for _, bad := range []string{"p/web", "web:privileged", "p/web:root", "/web:privileged"} {
		if _, err := ParseAllowances(bad); err == nil {
			t.Errorf("ParseAllowances(%q) accepted it", bad)
		}
	}
}

// FuzzFilter: whatever the method, path and body, the filter never panics, and what it lets
// through keeps its promises: a canonical path, a pull with fromImage and no body, a create
// without privileged mode, host namespaces or a bind of / or the socket (no grants here).
func FuzzFilter(f *testing.F) {
	f.Add("POST", "/v1.45/containers/create", compose("web", `{"Privileged":true}`))
	f.Add("POST", "/v1.45/containers/create", compose("web", `{"Binds":["/:/h"],"PidMode":"host"}`))
	f.Add("POST", "/v1.45/images/create?fromImage=a", "fromSrc=-")
	f.Add("POST", "/v1.45/containers/x/start", "{}")
	f.Add("GET", "/v1.45/containers/json", "")
	f.Add("POST", "/v1.45/volumes/create", `{"DriverOpts":{"o":"bind","device":"/run"}}`)
	f.Fuzz(func(t *testing.T, method, target, body string) {
		r, err := http.NewRequest(method, "http://docker"+target, strings.NewReader(body))
		if err != nil {
			return
		}
		d := Policy{}.filter(r)
		if d.reason != "" {
			return
		}
		if r.URL.Path == "" || path.Clean(r.URL.Path) != r.URL.Path {
			t.Fatalf("unclean path %q let through", r.URL.Path)
		}
		switch d.endpoint {
		case "POST /images/create":
			if r.URL.Query().Get("fromImage") == "" || body != "" {
				t.Fatalf("an import let through: %q body %q", target, body)
			}
		case "POST /containers/create":
			var c containerCreate
			if json.Unmarshal([]byte(body), &c) != nil {
				t.Fatalf("an unreadable create body let through: %q", body)
			}
			h := c.HostConfig
			if h.Privileged || h.PidMode == "host" || h.NetworkMode == "host" || len(h.Devices) > 0 {
				t.Fatalf("a hostile create let through: %q", body)
			}
			for _, b := range h.Binds {
				src, _, _ := strings.Cut(b, ":")
				clean := path.Clean(src)
				if strings.HasPrefix(src, "/") && (clean == "/" || clean == "/var/run/docker.sock" || strings.HasPrefix("/var/run/docker.sock", clean+"/")) {
					t.Fatalf("a bind of %q let through", src)
				}
			}
		}
	})
}
