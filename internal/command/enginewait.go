package command

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/handler"
	"github.com/berth-dev/berth/internal/config"
)

// enginePing bounds one ping of the engine, and engineRetry is the pause between pings while
// it does not answer: a webhook sender must hear back long before its own timeout.
const (
	enginePing  = 2 * time.Second
	engineRetry = 2 * time.Second
)

// waiting is the listener berth opened while it waited for the engine, and the handler swap
// that hands it over to berth's own handler.
type waiting struct {
	web  *web
	swap *handlerSwap
}

// waitForEngine pings the engine. When it answers, it returns nil at once and start-up goes on
// as usual. When it does not, berth logs why with the likely fix, listens anyway (a webhook gets
// a 503 naming the fix at once, so its sender retries later) and pings again every engineRetry
// until the engine answers, or ctx ends (then it returns ctx's error).
func waitForEngine(ctx context.Context, env Env, stderr io.Writer, served chan<- error) (*waiting, error) {
	cfg, err := config.Load(env.Getenv)
	if err != nil {
		return nil, err
	}
	docker, err := newEngine(env.Getenv)
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()
	down := engineProblem(ctx, docker)
	if down == nil {
		return nil, nil
	}
	log := cfg.Logger(stderr)
	log.Error("engine unreachable; webhooks are answered 503 until it answers", "err", down)
	webhooks := cfg.Webhooks
	webhooks.APIToken = nil // the read API needs the engine too
	webhooks.Limits = cfg.Exposure.Limits()
	refusal := &engineDown{}
	refusal.err.Store(&down)
	swap := &handlerSwap{}
	swap.set(handler.NewServer(webhooks, refusal, log))
	srv, err := listen(cfg.Exposure, cfg.ListenAddr, cfg.StateDir, swap, log)
	if err != nil {
		return nil, err
	}
	log.Info("listening", append(srv.logAttrs(), "engine", "unreachable")...)
	srv.serve(served)
	tick := time.NewTicker(engineRetry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = srv.shutdown(context.WithoutCancel(ctx))
			return nil, ctx.Err()
		case <-tick.C:
		}
		err := engineProblem(ctx, docker)
		if err == nil {
			log.Info("engine answers; starting", "engine", docker.DaemonHost())
			return &waiting{web: srv, swap: swap}, nil
		}
		refusal.err.Store(&err)
	}
}

// engineProblem pings the engine once, and says what is wrong and the likely fix when it does
// not answer in time.
func engineProblem(ctx context.Context, docker *client.Client) error {
	pingCtx, cancel := context.WithTimeout(ctx, enginePing)
	defer cancel()
	_, err := docker.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true})
	if err == nil {
		return nil
	}
	host := docker.DaemonHost()
	return fault.Errorf(fault.Unavailable, "the Docker engine at %s does not answer (%v); %s. berth tries again every %s and deploys as soon as it answers",
		host, err, likelyFix(host, err), engineRetry)
}

// likelyFix names the usual cause of an engine that does not answer, by how it failed.
func likelyFix(host string, err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "socket-proxy cannot reach the Docker socket") && strings.Contains(msg, "permission denied"):
		return "the socket proxy may not open the Docker socket: set DOCKER_GID to the socket's group (stat -c %g /var/run/docker.sock) and run docker compose up -d"
	case strings.Contains(msg, "socket-proxy cannot reach the Docker socket"):
		return "the socket proxy has no Docker socket: check DOCKER_SOCKET (the socket's path on the host) and run docker compose up -d"
	case strings.HasPrefix(host, "unix://") && errors.Is(err, syscall.EACCES):
		return "berth may not open the socket: run it with the socket's group (stat -c %g " + strings.TrimPrefix(host, "unix://") + ")"
	case strings.HasPrefix(host, "unix://"):
		return "is the socket mounted into berth's container at " + strings.TrimPrefix(host, "unix://") + "?"
	}
	return "is the socket proxy running? docker compose ps socket-proxy and docker compose logs socket-proxy say; " +
		"a wrong DOCKER_GID (stat -c %g /var/run/docker.sock) stops it"
}

// engineDown is the deployer while the engine does not answer: every push gets the 503 that
// says why, at once.
type engineDown struct{ err atomic.Pointer[error] }

// Deploy refuses req with the engine's problem.
func (e *engineDown) Deploy(context.Context, deployer.Request) (deployer.Ticket, error) {
	return deployer.Ticket{}, *e.err.Load()
}

// handlerSwap serves with the handler set last.
type handlerSwap struct{ h atomic.Pointer[http.Handler] }

func (s *handlerSwap) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

func (s *handlerSwap) set(h http.Handler) { s.h.Store(&h) }
