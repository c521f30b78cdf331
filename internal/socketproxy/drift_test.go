package socketproxy

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berth-dev/berth/deployer"
)

// route is the Engine API endpoint one engine call uses, as the moby client sends it (paths
// without the /v1.xx prefix), and the policy group that must be on for it.
type route struct {
	method, pattern, group string
}

// engineRoutes says which endpoint each method of deployer.Engine calls. Adding an engine
// call to the deployer means adding its route here; TestRulesCoverEngine then checks the
// proxy lets it through.
var engineRoutes = map[string]route{
	"ImagePull":    {"POST", "/images/create", ""},
	"ImageInspect": {"GET", "/images/{name}/json", ""},
	"ImageRemove":  {"DELETE", "/images/{name}", ""},
	"ImageTag":     {"POST", "/images/{name}/tag", ""},

	"ContainerList":    {"GET", "/containers/json", ""},
	"ContainerInspect": {"GET", "/containers/{id}/json", ""},
	"ContainerCreate":  {"POST", "/containers/create", ""},
	"ContainerStart":   {"POST", "/containers/{id}/start", ""},
	"ContainerStop":    {"POST", "/containers/{id}/stop", ""},
	"ContainerRemove":  {"DELETE", "/containers/{id}", ""},
	"ContainerRename":  {"POST", "/containers/{id}/rename", ""},
	"ContainerWait":    {"POST", "/containers/{id}/wait", ""},
	"ContainerLogs":    {"GET", "/containers/{id}/logs", ""},

	"ExecCreate":  {"POST", "/containers/{id}/exec", groupExec},
	"ExecAttach":  {"POST", "/exec/{id}/start", groupExec},
	"ExecInspect": {"GET", "/exec/{id}/json", groupExec},

	"NetworkList":       {"GET", "/networks", ""},
	"NetworkCreate":     {"POST", "/networks/create", ""},
	"NetworkConnect":    {"POST", "/networks/{id}/connect", ""},
	"NetworkDisconnect": {"POST", "/networks/{id}/disconnect", ""},

	"VolumeInspect": {"GET", "/volumes/{id}", ""},
	"VolumeCreate":  {"POST", "/volumes/create", ""},

	"Info":                {"GET", "/info", ""}, // also how `berth check` and the backend choice see the engine
	"ServiceList":         {"GET", "/services", groupSwarm},
	"ServiceInspect":      {"GET", "/services/{id}", groupSwarm},
	"ServiceUpdate":       {"POST", "/services/{id}/update", groupSwarm},
	"TaskList":            {"GET", "/tasks", groupSwarm},
	"DistributionInspect": {"GET", "/distribution/{name}/json", groupSwarm},
}

// allowedBeyondEngine are the rules no deployer.Engine method needs, each with why the proxy
// lets it through anyway.
var allowedBeyondEngine = map[string]string{
	"GET /_ping":            "the client's API version negotiation and berth's start-up ping (outside Engine)",
	"HEAD /_ping":           "the client's API version negotiation tries HEAD first",
	"GET /version":          "API version negotiation by clients that ask /version (README: negotiate the API version)",
	"GET /events":           "the project index follows compose containers coming and going (deployer/index.go, an optional call), streams pass through",
	"GET /networks/{id}":    "network inspection, listed with the network calls in the README",
	"GET /swarm":            "part of the swarm group, only with SOCKET_PROXY_SWARM",
	"GET /nodes":            "part of the swarm group, only with SOCKET_PROXY_SWARM",
	"POST /services/create": "part of the swarm group, only with SOCKET_PROXY_SWARM",
	"GET /tasks/{id}":       "part of the swarm group, only with SOCKET_PROXY_SWARM",
}

// examplePath fills a route's pattern with values like the client's: an image reference
// keeps its registry port and slashes.
func examplePath(pattern string) string {
	return strings.NewReplacer("{id}", "c0ffee", "{name}", "127.0.0.1:5000/acme/web:1").Replace(pattern)
}

// exampleBodies are the query and body the client sends with the calls whose body the proxy
// inspects (inspect.go): a pull names fromImage and has no body, a create has a JSON body.
var exampleBodies = map[string][2]string{
	"POST /images/create":     {"?fromImage=127.0.0.1%3A5000%2Facme%2Fweb&tag=1", ""},
	"POST /containers/create": {"?name=p-web-1", `{"Image":"acme/web:1","HostConfig":{"Binds":["data:/data"]}}`},
	"POST /volumes/create":    {"", `{"Name":"p_data"}`},
}

// engineMethods are the methods of deployer.Engine, embedded interfaces' included.
func engineMethods() []string {
	t := reflect.TypeFor[deployer.Engine]()
	names := make([]string, 0, t.NumMethod())
	for i := range t.NumMethod() {
		names = append(names, t.Method(i).Name)
	}
	return names
}

// TestEngineRoutesListEveryCall fails when deployer.Engine gains a call with no route in
// engineRoutes, or engineRoutes keeps a call Engine no longer has.
func TestEngineRoutesListEveryCall(t *testing.T) {
	methods := engineMethods()
	for _, m := range methods {
		if _, ok := engineRoutes[m]; !ok {
			t.Errorf("deployer.Engine.%s has no route in engineRoutes: add the Engine API endpoint it calls (and a rule in rules.go if the proxy refuses it)", m)
		}
	}
	for m := range engineRoutes {
		if !slices.Contains(methods, m) {
			t.Errorf("engineRoutes lists %s, which deployer.Engine no longer has: remove it (and its rule, unless allowedBeyondEngine says why it stays)", m)
		}
	}
}

// TestRulesCoverEngine sends each engine call's request through the proxy's real handler, with
// only the call's own group switched on, to a stand-in engine that records what arrived.
func TestRulesCoverEngine(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var arrived []string
	engine := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		arrived = append(arrived, r.Method+" "+r.URL.Path)
		mu.Unlock()
		_, _ = io.WriteString(w, "{}")
	})}
	go func() { _ = engine.Serve(ln) }()
	t.Cleanup(func() { engine.Close() })

	for _, m := range engineMethods() {
		rt, ok := engineRoutes[m]
		if !ok {
			continue // TestEngineRoutesListEveryCall reports it
		}
		policy := Policy{Exec: rt.group == groupExec, Swarm: rt.group == groupSwarm}
		target := "/v1.52" + examplePath(rt.pattern)
		example := exampleBodies[rt.method+" "+rt.pattern]
		mu.Lock()
		arrived = nil
		mu.Unlock()
		rec := httptest.NewRecorder()
		New(sock, policy, slog.New(slog.DiscardHandler)).ServeHTTP(rec, httptest.NewRequest(rt.method, "http://docker"+target+example[0], strings.NewReader(example[1])))
		mu.Lock()
		got := slices.Clone(arrived)
		mu.Unlock()
		if rec.Code != http.StatusOK || !slices.Equal(got, []string{rt.method + " " + target}) {
			t.Errorf("deployer.Engine.%s needs %s %s with %+v, but the proxy answered %d %s and the engine saw %q",
				m, rt.method, rt.pattern, policy, rec.Code, strings.TrimSpace(rec.Body.String()), got)
		}
	}
}

// TestRulesAreNeeded fails when the proxy allows an endpoint that no engine call uses and
// allowedBeyondEngine gives no reason for.
func TestRulesAreNeeded(t *testing.T) {
	used := map[string]bool{}
	for _, rt := range engineRoutes {
		used[rt.method+" "+rt.pattern] = true
	}
	for _, rl := range rules {
		endpoint := rl.method + " " + rl.pattern
		if used[endpoint] == (allowedBeyondEngine[endpoint] != "") {
			if used[endpoint] {
				t.Errorf("%s is used by an engine call and also listed in allowedBeyondEngine: drop it from the list", endpoint)
			} else {
				t.Errorf("the proxy allows %s, which no deployer.Engine call uses: remove its rule, or say in allowedBeyondEngine why it stays", endpoint)
			}
		}
	}
	for endpoint := range allowedBeyondEngine {
		if !slices.ContainsFunc(rules, func(rl rule) bool { return rl.method+" "+rl.pattern == endpoint }) {
			t.Errorf("allowedBeyondEngine lists %s, which has no rule", endpoint)
		}
	}
}
