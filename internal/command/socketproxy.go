package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/socketproxy"
)

// SocketProxy is `berth socket-proxy`: it serves the filtering Docker socket proxy until ctx ends.
func SocketProxy(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if err := noArgs("socket-proxy", args, stdout, socketProxyDoc); err != nil {
		return noHelp(err)
	}
	pc, err := config.LoadProxy(getenv)
	if err != nil {
		return err
	}
	log := pc.Logger(stderr)
	if err := checkSocket(pc.Socket); errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w; the proxy runs as uid %d with groups %v: give it the socket's group, e.g. DOCKER_GID=$(stat -c %%g %s) with group_add: [\"${DOCKER_GID}\"]",
			err, os.Getuid(), groups(), pc.Socket)
	} else if err != nil {
		log.Warn("the Docker socket does not answer yet; requests will fail until it does", "err", err)
	}
	// unix:///path listens on a socket file, so the proxy can be shared through a volume
	// instead of a network; anything else is a TCP address.
	network, addr := "tcp", pc.Listen
	if p, ok := strings.CutPrefix(pc.Listen, "unix://"); ok {
		network, addr = "unix", p
		_ = os.Remove(p) // a socket file left by a previous run would block the listen
	}
	ln, err := net.Listen(network, addr)
	if err != nil {
		return fmt.Errorf("SOCKET_PROXY_LISTEN=%s: %w", pc.Listen, err)
	}
	srv := &http.Server{
		Handler:           socketproxy.New(pc.Socket, pc.Policy(), log),
		ReadHeaderTimeout: 10 * time.Second, // no other timeouts: events and pulls stream for long
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("socket proxy listening", "addr", network+"://"+ln.Addr().String(), "socket", pc.Socket, "exec", pc.Exec, "swarm", pc.Swarm, "readonly", pc.ReadOnly, "allow", pc.Allow)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("socket proxy: %w", err)
	case <-ctx.Done():
	}
	stopCtx, cancel := context.WithTimeout(context.Background(), pc.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(stopCtx); err != nil {
		// Event streams never end by themselves; cut them.
		_ = srv.Close()
	}
	return nil
}

// checkSocket connects to the Docker socket once, so a permission problem shows at start.
func checkSocket(path string) error {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return fmt.Errorf("SOCKET_PROXY_SOCKET=%s: %w", path, err)
	}
	return c.Close()
}

// groups lists the process's supplementary groups, for the permission hint.
func groups() []int {
	g, _ := os.Getgroups()
	return g
}

const socketProxyDoc = `Serve a filtering proxy of the Docker socket that forwards only the Engine API calls berth makes.
Configured by environment variables:
  SOCKET_PROXY_LISTEN    where to listen (default 127.0.0.1:2375; ":2375" for every interface,
                         e.g. on a compose network only berth shares; unix:///path for a socket file)
  SOCKET_PROXY_SOCKET    the engine's socket (default /var/run/docker.sock)
  SOCKET_PROXY_EXEC      allow exec, for gates and hooks (default false)
  SOCKET_PROXY_SWARM     allow the swarm calls (default false)
  SOCKET_PROXY_READONLY  allow only reads (default false)`
