// Package socketproxy is `berth socket-proxy`: a reverse proxy in front of the Docker socket
// that forwards only the Engine API calls berth makes (rules.go) and refuses the rest.
package socketproxy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"strings"
)

// Policy says which optional groups of Engine endpoints the proxy lets through, beyond the
// ones every deploy needs.
type Policy struct {
	Exec  bool // container exec, for deploy hooks
	Swarm bool // swarm, services, tasks and nodes, for the swarm backend
	// ReadOnly lets only GET and HEAD through: enough for `berth check` and for watching,
	// never for a deploy.
	ReadOnly bool
	// Allow grants named compose services what container creates are otherwise refused
	// (inspect.go): a Traefik that reads the socket, a monitor that needs devices.
	Allow Allowances
	// Socket is the Docker socket's path, refused as a bind source like /var/run/docker.sock.
	Socket string
}

// decision is what the policy says about one request: refused when reason is not "".
type decision struct {
	endpoint string // METHOD /path without the version prefix
	reason   string
}

// filter applies the policy to a whole request: decide, then the body of the calls whose
// body can carry a way onto the host. A body it reads is put back for forwarding.
func (p Policy) filter(r *http.Request) decision {
	d := p.decide(r)
	if d.reason != "" {
		return d
	}
	var judge func([]byte) string
	switch {
	case d.endpoint == "POST /images/create":
		// The engine imports a root filesystem from a form body whenever fromImage is empty.
		if r.URL.Query().Get("fromImage") == "" {
			d.reason = "only a pull (fromImage in the query) is allowed; berth never imports an image"
			return d
		}
		judge = func(b []byte) string {
			if len(b) > 0 {
				return "a pull carries no body; a body here is an image import, which berth never does"
			}
			return ""
		}
	case d.endpoint == "POST /containers/create":
		judge = p.judgeCreate
	case d.endpoint == "POST /volumes/create":
		judge = p.judgeVolumeCreate
	case strings.HasPrefix(d.endpoint, "POST /containers/") && strings.HasSuffix(d.endpoint, "/start"):
		judge = func(b []byte) string {
			if len(bytes.TrimSpace(b)) > 0 {
				return "a start carries no body; the host config is set at create, where the proxy inspects it"
			}
			return ""
		}
	default:
		return d
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxInspectedBody+1))
	switch {
	case err != nil:
		d.reason = "reading the request body: " + err.Error()
	case len(body) > maxInspectedBody:
		d.reason = "the request body is larger than 4 MiB"
	default:
		d.reason = judge(body)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	return d
}

// decide applies the policy to a request's method, path and query.
func (p Policy) decide(r *http.Request) decision {
	p0 := r.URL.Path
	if m := versionPrefix.FindStringSubmatch(p0); m != nil {
		p0 = m[1]
	}
	d := decision{endpoint: r.Method + " " + p0}
	// The engine cleans paths before routing, so an unclean path could reach an endpoint
	// other than the one checked here; refuse it rather than guess.
	if r.URL.Path == "" || path.Clean(r.URL.Path) != r.URL.Path {
		d.reason = "the path is not in canonical form"
		return d
	}
	for _, rl := range rules {
		if rl.method != r.Method || !rl.path.MatchString(p0) {
			continue
		}
		switch {
		case p.ReadOnly && r.Method != "GET" && r.Method != "HEAD":
			d.reason = "the proxy is read-only; unset SOCKET_PROXY_READONLY to allow deploys"
		case rl.group == groupExec && !p.Exec, rl.group == groupSwarm && !p.Swarm:
			d.reason = fmt.Sprintf("it is off; set %s on the socket proxy to allow it", groupVar(rl.group))
		case p0 == "/images/create" && r.URL.Query().Has("fromSrc"):
			d.reason = "importing an image (fromSrc) is never needed; berth only pulls (fromImage)"
		}
		return d
	}
	d.reason = "berth never uses it"
	return d
}

// New returns a handler that forwards to the Docker Engine listening on the unix socket at
// socketPath only the requests policy allows, and answers 403 to the others. Responses
// stream as they come (pull progress, events), and upgraded connections (exec) pass through.
func New(socketPath string, policy Policy, log *slog.Logger) http.Handler {
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
			writeMessage(w, http.StatusBadGateway, "berth socket-proxy cannot reach the Docker socket "+socketPath+": "+err.Error())
		},
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d := policy.filter(r)
		if d.reason != "" {
			log.Warn("socket proxy refused", "endpoint", d.endpoint, "reason", d.reason, "remote", r.RemoteAddr)
			writeMessage(w, http.StatusForbidden, fmt.Sprintf("berth socket-proxy refuses %s: %s", d.endpoint, d.reason))
			return
		}
		log.Debug("socket proxy", "endpoint", d.endpoint, "remote", r.RemoteAddr)
		rp.ServeHTTP(w, r)
	})
}

// writeMessage answers in the Engine API's error format: the Docker client shows "message"
// as the error text, so berth's own log says why the proxy refused.
func writeMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
}
