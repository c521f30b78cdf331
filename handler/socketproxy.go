package handler

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"regexp"
	"strings"
)

// ProxyPolicy says which optional groups of Engine endpoints the socket proxy lets through,
// beyond the ones every deploy needs.
type ProxyPolicy struct {
	Exec  bool // container exec, for deploy hooks
	Swarm bool // swarm, services, tasks and nodes, for the swarm backend
	// ReadOnly lets only GET and HEAD through: enough for `berth check` and for watching,
	// never for a deploy.
	ReadOnly bool
}

// proxyRule is one endpoint the proxy may forward: a method and a path pattern (without the
// /v1.xx prefix). Group names the ProxyPolicy field that must be on; "" means always.
type proxyRule struct {
	method string
	path   *regexp.Regexp
	group  string
}

// The groups of optional endpoints and the variables that switch them on.
const (
	groupExec  = "exec"
	groupSwarm = "swarm"
)

var proxyGroupVar = map[string]string{
	groupExec:  "SOCKET_PROXY_EXEC=true",
	groupSwarm: "SOCKET_PROXY_SWARM=true",
}

// rule builds a proxyRule; pattern is anchored and {id} stands for one path segment.
func rule(group, method, pattern string) proxyRule {
	re := strings.ReplaceAll(regexp.QuoteMeta(pattern), `\{id\}`, `[^/]+`)
	re = strings.ReplaceAll(re, `\{name\}`, `.+`) // image references contain slashes
	return proxyRule{method: method, path: regexp.MustCompile("^" + re + "$"), group: group}
}

// proxyRules is everything berth asks of the Docker socket (deployer/engine.go lists the
// calls); the README's "Least privilege" table mirrors it. Anything else is refused.
var proxyRules = []proxyRule{
	rule("", "GET", "/_ping"),
	rule("", "HEAD", "/_ping"),
	rule("", "GET", "/version"),
	rule("", "GET", "/info"),
	rule("", "GET", "/events"),

	rule("", "GET", "/containers/json"),
	rule("", "GET", "/containers/{id}/json"),
	rule("", "POST", "/containers/create"),
	rule("", "POST", "/containers/{id}/start"),
	rule("", "POST", "/containers/{id}/stop"),
	rule("", "POST", "/containers/{id}/rename"),
	rule("", "POST", "/containers/{id}/wait"),
	rule("", "GET", "/containers/{id}/logs"), // the pre-deploy gate container's output
	rule("", "DELETE", "/containers/{id}"),

	rule("", "POST", "/images/create"), // pull only: fromSrc (import) is refused below
	rule("", "GET", "/images/{name}/json"),
	rule("", "POST", "/images/{name}/tag"),
	rule("", "DELETE", "/images/{name}"),

	rule("", "GET", "/networks"),
	rule("", "GET", "/networks/{id}"),
	rule("", "POST", "/networks/create"),
	rule("", "POST", "/networks/{id}/connect"),
	rule("", "POST", "/networks/{id}/disconnect"), // start-first: the old container leaves before it stops

	rule("", "GET", "/volumes/{id}"),
	rule("", "POST", "/volumes/create"),

	rule(groupExec, "POST", "/containers/{id}/exec"),
	rule(groupExec, "POST", "/exec/{id}/start"),
	rule(groupExec, "GET", "/exec/{id}/json"),

	rule(groupSwarm, "GET", "/swarm"),
	rule(groupSwarm, "GET", "/nodes"),
	rule(groupSwarm, "GET", "/services"),
	rule(groupSwarm, "GET", "/services/{id}"),
	rule(groupSwarm, "POST", "/services/create"),
	rule(groupSwarm, "POST", "/services/{id}/update"),
	rule(groupSwarm, "GET", "/tasks"),
	rule(groupSwarm, "GET", "/tasks/{id}"),
	rule(groupSwarm, "GET", "/distribution/{name}/json"),
}

// versionPrefix is the optional API version the Docker client puts before every path.
var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+(/.*)$`)

// proxyDecision is what the policy says about one request: refused when reason is not "".
type proxyDecision struct {
	endpoint string // METHOD /path without the version prefix
	reason   string
}

// decide applies the policy to a request's method, path and query.
func (p ProxyPolicy) decide(r *http.Request) proxyDecision {
	p0 := r.URL.Path
	if m := versionPrefix.FindStringSubmatch(p0); m != nil {
		p0 = m[1]
	}
	d := proxyDecision{endpoint: r.Method + " " + p0}
	// The engine cleans paths before routing, so an unclean path could reach an endpoint
	// other than the one checked here; refuse it rather than guess.
	if r.URL.Path == "" || path.Clean(r.URL.Path) != r.URL.Path {
		d.reason = "the path is not in canonical form"
		return d
	}
	for _, rl := range proxyRules {
		if rl.method != r.Method || !rl.path.MatchString(p0) {
			continue
		}
		switch {
		case p.ReadOnly && r.Method != "GET" && r.Method != "HEAD":
			d.reason = "the proxy is read-only; unset SOCKET_PROXY_READONLY to allow deploys"
		case rl.group == groupExec && !p.Exec, rl.group == groupSwarm && !p.Swarm:
			d.reason = fmt.Sprintf("it is off; set %s on the socket proxy to allow it", proxyGroupVar[rl.group])
		case p0 == "/images/create" && r.URL.Query().Get("fromSrc") != "":
			d.reason = "importing an image (fromSrc) is never needed; berth only pulls (fromImage)"
		}
		return d
	}
	d.reason = "berth never uses it"
	return d
}

// NewSocketProxy returns a handler that forwards to the Docker Engine listening on the unix
// socket at socketPath only the requests policy allows, and answers 403 to the others.
// Responses stream as they come (pull progress, events), and upgraded connections (exec)
// pass through.
func NewSocketProxy(socketPath string, policy ProxyPolicy, log *slog.Logger) http.Handler {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    16,
		IdleConnTimeout: 0,
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = "docker"
			pr.Out.Host = "docker"
			// Forward exactly the path that was checked, never a differently escaped twin.
			pr.Out.URL.RawPath = ""
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorLog:      slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			log.Error("socket proxy: engine unreachable", "socket", socketPath, "method", r.Method, "path", r.URL.Path, "err", err)
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "berth socket-proxy cannot reach the Docker socket " + socketPath + ": " + err.Error()})
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := policy.decide(r)
		if d.reason != "" {
			log.Warn("socket proxy refused", "endpoint", d.endpoint, "reason", d.reason, "remote", r.RemoteAddr)
			// The Docker client shows "message" as the error text, so berth's log says this.
			writeJSON(w, http.StatusForbidden, map[string]string{
				"message": fmt.Sprintf("berth socket-proxy refuses %s: %s", d.endpoint, d.reason)})
			return
		}
		log.Debug("socket proxy", "endpoint", d.endpoint, "remote", r.RemoteAddr)
		rp.ServeHTTP(w, r)
	})
}
