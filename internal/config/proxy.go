package config

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/berth-dev/berth/internal/socketproxy"
)

// Proxy configures `berth socket-proxy`, read from the environment. It listens on loopback
// unless SOCKET_PROXY_LISTEN asks for more: an unauthenticated Engine API is never exposed by default.
type Proxy struct {
	Listen          string        `envconfig:"SOCKET_PROXY_LISTEN" default:"127.0.0.1:2375"`
	Socket          string        `envconfig:"SOCKET_PROXY_SOCKET" default:"/var/run/docker.sock"`
	Exec            bool          `envconfig:"SOCKET_PROXY_EXEC" default:"false"`
	Swarm           bool          `envconfig:"SOCKET_PROXY_SWARM" default:"false"`
	ReadOnly        bool          `envconfig:"SOCKET_PROXY_READONLY" default:"false"`
	Allow           string        `envconfig:"SOCKET_PROXY_ALLOW"` // project/service:grant[+grant…], space- or comma-separated
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"5s"`
}

// LoadProxy reads the socket proxy's configuration through getenv and checks it.
func LoadProxy(getenv func(string) string) (Proxy, error) {
	var p Proxy
	if err := decode(&p, getenv); err != nil {
		return p, err
	}
	if _, err := socketproxy.ParseAllowances(p.Allow); err != nil {
		return p, fmt.Errorf("SOCKET_PROXY_ALLOW: %w", err)
	}
	return p, checkLogging(p.LogLevel, p.LogFormat)
}

// Policy is what the proxy forwards: the groups switched on and the grants per service.
func (p Proxy) Policy() socketproxy.Policy {
	allow, _ := socketproxy.ParseAllowances(p.Allow) // validated by LoadProxy
	return socketproxy.Policy{Exec: p.Exec, Swarm: p.Swarm, ReadOnly: p.ReadOnly, Allow: allow, Socket: p.Socket}
}

// Logger is the logger LOG_LEVEL and LOG_FORMAT ask for, writing to w.
func (p Proxy) Logger(w io.Writer) *slog.Logger { return newLogger(w, p.LogLevel, p.LogFormat) }
