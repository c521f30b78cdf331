package command

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"syscall"

	"github.com/docker/go-connections/tlsconfig"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/handler"
	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/notify"
)

// Env is the process environment a command is given: Getenv answers for berth's variables
// and the engine's (DOCKER_HOST, …); Environ, as KEY=VALUE, is what compose files are
// interpolated with.
type Env struct {
	Getenv  func(string) string
	Environ []string
}

// wiring is what serve and the CLI commands build from the configuration.
type wiring struct {
	cfg      config.Config
	log      *slog.Logger
	docker   *client.Client
	deployer *deployer.Deployer
	history  *deployer.History
	notifier *notify.Notifier
	metrics  *handler.Metrics
}

// recorder hands each finished deploy's record to the history, the metrics, the notifications
// and more (the status page's live updates), in that order.
func (w *wiring) recorder(more func(deployer.Record)) func(deployer.Record) {
	return func(r deployer.Record) {
		if err := w.history.Add(r); err != nil {
			w.log.Error("deploy history not saved", "err", err)
		}
		w.metrics.Observe(r)
		w.notifier.Notify(r)
		if more != nil {
			more(r)
		}
	}
}

// swarmAuth is what the swarm backend forwards to the nodes: the pull logins, unless its own
// REGISTRY_AUTH_CONFIG says otherwise.
func swarmAuth(cfg config.Config, creds registry.Credentials) (registry.Credentials, error) {
	if cfg.RegistryConfig == "" {
		return creds, nil
	}
	auth, err := registry.LoadConfig(cfg.RegistryConfig)
	if err != nil {
		return registry.Credentials{}, fmt.Errorf("REGISTRY_AUTH_CONFIG: %w", err)
	}
	return auth, nil
}

// wire reads the configuration and builds the deployer the way every command uses it; the
// deployer's OnRecord keeps history, counts metrics and queues notifications, then calls more;
// onStep, if set, sees each step of a running deploy (the page's and berth deploy's progress).
// Only serving (berth serve) keeps accepted pushes in STATE_DIR: one process owns that log.
func wire(ctx, deployCtx context.Context, env Env, stderr io.Writer, serving bool, more func(deployer.Record), onStep func(deployer.StepEvent)) (*wiring, error) {
	cfg, err := config.Load(env.Getenv)
	if err != nil {
		return nil, err
	}
	w := &wiring{cfg: cfg, log: cfg.Logger(stderr)}
	creds, err := cfg.Credentials()
	if err != nil {
		return nil, err
	}
	if w.history, err = deployer.OpenHistory(cfg.StateDir, cfg.HistoryLimit); err != nil {
		return nil, err
	}
	if w.docker, err = newEngine(env.Getenv); err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	if err := negotiateAPI(ctx, w.docker); err != nil {
		w.docker.Close()
		return nil, err
	}
	projects, err := deployer.DetectHostDirs(ctx, w.docker, cfg.Projects(env.Environ))
	if err != nil {
		w.docker.Close()
		return nil, err
	}
	self, err := deployer.FindSelf(ctx, w.docker)
	if err != nil {
		w.log.Warn("cannot tell which compose service berth runs as; a push of berth's own image could stop berth mid-deploy", "err", err)
	}
	registryAuth, err := swarmAuth(cfg, creds)
	if err != nil {
		return nil, err
	}
	if self.SwarmService != "" {
		w.log.Info("berth runs as a swarm service and will not update it", "stack", self.Stack, "service_id", self.SwarmService)
	}
	w.notifier = notify.New(cfg.Notify, notify.Options{Timeout: cfg.NotifyTimeout, Logger: w.log})
	var d *deployer.Deployer
	w.metrics = handler.NewMetrics(func() string { v, _, _ := buildVersion(); return v }(), func() int { return d.QueueDepth() })
	d = deployer.New(deployCtx, w.docker, deployer.Options{
		Projects:        projects,
		Owners:          cfg.Owner,
		ComposeVersion:  cfg.ComposeVersion,
		Parallel:        cfg.Parallel,
		Logger:          w.log,
		Self:            self,
		Discover:        cfg.Discover(),
		Filter:          cfg.Filter(),
		Environ:         config.ComposeEnviron(env.Environ),
		Backend:         cfg.Backend,
		SwarmTimeout:    cfg.SwarmTimeout,
		RegistryAuth:    registryAuth,
		Gate:            cfg.Gate(),
		StateDir:        cfg.StateDir,
		HealthTimeout:   cfg.HealthTimeout,
		HealthSettle:    cfg.HealthSettle,
		KeepImages:      cmp.Or(cfg.KeepImages, -1), // 0 means keep none, not the default
		RetryFor:        cfg.RetryFor,
		RecordAccepted:  serving,
		Shutdown:        ctx,
		PullTimeout:     cfg.PullTimeout,
		RegistryTimeout: cfg.RegistryTimeout,
		CrashAfter:      cfg.CrashAfter,
		Crash:           func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) },
		DryRun:          cfg.DryRun,
		OptIn:           cfg.OptIn,
		Credentials:     creds,
		OnRecord:        w.recorder(more),
		OnStep:          onStep,
	})
	w.deployer = d
	if self.Project != "" {
		w.log.Info("berth runs as a compose service and will not redeploy it", "project", self.Project, "service", self.Service)
	}
	return w, nil
}

// close flushes the notifications (bounded by ctx) and closes the engine client.
func (w *wiring) close(ctx context.Context) {
	if err := w.notifier.Close(ctx); err != nil {
		w.log.Warn("notifications abandoned at exit", "err", err)
	}
	if err := w.deployer.Close(); err != nil {
		w.log.Warn("accepted-push log", "err", err)
	}
	w.docker.Close()
}

// newEngine is the Engine API client DOCKER_HOST, DOCKER_API_VERSION, DOCKER_CERT_PATH and
// DOCKER_TLS_VERIFY describe, as client.FromEnv would make it from the process environment.
func newEngine(getenv func(string) string) (*client.Client, error) {
	var opts []client.Opt
	if dir := getenv("DOCKER_CERT_PATH"); dir != "" {
		tlsConfig, err := tlsconfig.Client(tlsconfig.Options{
			CAFile:             filepath.Join(dir, "ca.pem"),
			CertFile:           filepath.Join(dir, "cert.pem"),
			KeyFile:            filepath.Join(dir, "key.pem"),
			InsecureSkipVerify: getenv("DOCKER_TLS_VERIFY") == "",
			MinVersion:         tls.VersionTLS12,
		})
		if err != nil {
			return nil, fmt.Errorf("configure TLS from %q: %w", "DOCKER_CERT_PATH="+dir, err)
		}
		opts = append(opts, client.WithHTTPClient(&http.Client{
			Transport:     &http.Transport{TLSClientConfig: tlsConfig},
			CheckRedirect: client.CheckRedirect,
		}))
	}
	if host := getenv("DOCKER_HOST"); host != "" {
		opts = append(opts, client.WithHost(host))
	}
	opts = append(opts, client.WithAPIVersion(getenv("DOCKER_API_VERSION")))
	return client.New(opts...)
}
