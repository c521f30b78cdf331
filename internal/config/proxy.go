package config

import (
	"io"
	"log/slog"
	"time"
)

// Proxy configures `berth socket-proxy`, read from the environment. It listens on loopback
// unless SOCKET_PROXY_LISTEN asks for more: an unauthenticated Engine API is never exposed by default.
type Proxy struct {
	Listen          string        `envconfig:"SOCKET_PROXY_LISTEN" default:"127.0.0.1:2375"`
	Socket          string        `envconfig:"SOCKET_PROXY_SOCKET" default:"/var/run/docker.sock"`
	Exec            bool          `envconfig:"SOCKET_PROXY_EXEC" default:"false"`
	Swarm           bool          `envconfig:"SOCKET_PROXY_SWARM" default:"false"`
	ReadOnly        bool          `envconfig:"SOCKET_PROXY_READONLY" default:"false"`
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
	return p, checkLogging(p.LogLevel, p.LogFormat)
}

// Logger is the logger LOG_LEVEL and LOG_FORMAT ask for, writing to w.
func (p Proxy) Logger(w io.Writer) *slog.Logger { return newLogger(w, p.LogLevel, p.LogFormat) }
