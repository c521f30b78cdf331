package socketproxy

import (
	"regexp"
	"strings"
)

// rule is one endpoint the proxy may forward: a method and a path pattern (without the
// /v1.xx prefix). group names the Policy field that must be on; "" means always.
type rule struct {
	method  string
	pattern string // as written in the table, for messages and the drift test
	path    *regexp.Regexp
	group   string
}

// The groups of optional endpoints, each switched on by its own setting (groupVar).
const (
	groupExec  = "exec"
	groupSwarm = "swarm"
)

// groupVar is the proxy setting that switches group on.
func groupVar(group string) string {
	switch group {
	case groupExec:
		return "SOCKET_PROXY_EXEC=true"
	case groupSwarm:
		return "SOCKET_PROXY_SWARM=true"
	}
	return ""
}

// allow builds a rule; pattern is anchored and {id} stands for one path segment.
func allow(group, method, pattern string) rule {
	re := strings.ReplaceAll(regexp.QuoteMeta(pattern), `\{id\}`, `[^/]+`)
	re = strings.ReplaceAll(re, `\{name\}`, `.+`) // image references contain slashes
	return rule{method: method, pattern: pattern, path: regexp.MustCompile("^" + re + "$"), group: group}
}

// rules is everything berth asks of the Docker socket (deployer.Engine lists the calls, and
// drift_test.go fails when the two disagree); the README's "Least privilege" table mirrors it.
// Anything else is refused.
var rules = []rule{
	allow("", "GET", "/_ping"),
	allow("", "HEAD", "/_ping"),
	allow("", "GET", "/version"),
	allow("", "GET", "/info"),
	allow("", "GET", "/events"),

	allow("", "GET", "/containers/json"),
	allow("", "GET", "/containers/{id}/json"),
	allow("", "POST", "/containers/create"),
	allow("", "POST", "/containers/{id}/start"),
	allow("", "POST", "/containers/{id}/stop"),
	allow("", "POST", "/containers/{id}/rename"),
	allow("", "POST", "/containers/{id}/wait"),
	allow("", "GET", "/containers/{id}/logs"), // the pre-deploy gate container's output
	allow("", "DELETE", "/containers/{id}"),

	allow("", "POST", "/images/create"), // pull only: fromSrc (import) is refused in decide
	allow("", "GET", "/images/{name}/json"),
	allow("", "POST", "/images/{name}/tag"),
	allow("", "DELETE", "/images/{name}"),
	allow("", "GET", "/distribution/{name}/json"), // read-only: resolves a manifest (berth check, swarm pins)

	allow("", "GET", "/networks"),
	allow("", "GET", "/networks/{id}"),
	allow("", "POST", "/networks/create"),
	allow("", "POST", "/networks/{id}/connect"),
	allow("", "POST", "/networks/{id}/disconnect"), // start-first: the old container leaves before it stops

	allow("", "GET", "/volumes/{id}"),
	allow("", "POST", "/volumes/create"),

	allow(groupExec, "POST", "/containers/{id}/exec"),
	allow(groupExec, "POST", "/exec/{id}/start"),
	allow(groupExec, "GET", "/exec/{id}/json"),

	allow(groupSwarm, "GET", "/swarm"),
	allow(groupSwarm, "GET", "/nodes"),
	allow(groupSwarm, "GET", "/services"),
	allow(groupSwarm, "GET", "/services/{id}"),
	allow(groupSwarm, "POST", "/services/create"),
	allow(groupSwarm, "POST", "/services/{id}/update"),
	allow(groupSwarm, "GET", "/tasks"),
	allow(groupSwarm, "GET", "/tasks/{id}"),
}

// versionPrefix is the optional API version the Docker client puts before every path.
var versionPrefix = regexp.MustCompile(`^/v[0-9]+\.[0-9]+(/.*)$`)
