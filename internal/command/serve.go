package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/handler"
	statuspage "github.com/berth-dev/berth/handler/web"
	"github.com/berth-dev/berth/internal/config"
)

// Serve is `berth serve`, the default command: it receives registry webhooks and redeploys
// until ctx ends, then lets the deploys in flight finish.
func Serve(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	if err := parseFlags(flag.NewFlagSet("serve", flag.ContinueOnError), args, stdout, "serve",
		"Receive registry webhooks and redeploy compose services (the default command)."); err != nil {
		return noHelp(err)
	}
	return serve(ctx, env, stderr)
}

// serve is `berth serve`.
func serve(ctx context.Context, env Env, stderr io.Writer) error {
	served := make(chan error, 3)
	early, err := waitForEngine(ctx, env, stderr, served)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while waiting for the engine
		}
		return err
	}
	if early != nil {
		// Until berth serves on it, the listener answers 503s; a start-up that fails closes it.
		defer func() {
			if early != nil {
				_ = early.web.shutdown(context.WithoutCancel(ctx))
			}
		}()
	}
	deployCtx, cancelDeploys := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeploys()
	events := statuspage.NewHub()
	w, err := wire(ctx, deployCtx, env, stderr, true, events.Publish, events.Step)
	if err != nil {
		return err
	}
	cfg, log, d := w.cfg, w.log, w.deployer
	if err := loadConfigured(ctx, cfg.Discover(), d); err != nil {
		w.close(ctx)
		return err
	}
	recoverAtStart(ctx, cfg, d, log)
	if err := startWatch(ctx, w); err != nil {
		w.close(ctx)
		return err
	}
	if cfg.DryRun {
		log.Warn("DRY_RUN is set: deploys are planned and recorded as would-deploy, nothing is pulled or recreated")
	}
	srv, err := serveOn(early, cfg, handler.NewServer(handlerConfig(w, events), d, log), log)
	if err != nil {
		return err
	}
	metricsSrv, err := serveMetrics(cfg.MetricsAddr, w.metrics, log, served)
	if err != nil {
		return err
	}
	log.Info("listening", append(srv.logAttrs(), "owner", strings.Join(cfg.Owner, ","), "project_dir", cfg.ProjectDir,
		"credentials", strings.Join(cfg.EnabledCredentials(), ","), "status_api", cfg.APIToken != "", "deploy_api", cfg.DeployToken != "" || cfg.APITokenCanDeploy, "notify", len(cfg.Notify),
		"registry_logins", strings.Join(func() []string { c, _ := cfg.Credentials(); return c.Hosts() }(), ","))...)
	srv.warnPlainHTTP(cfg.URLSecretCredentials(), log)
	if early == nil {
		srv.serve(served)
	}
	early = nil // serving now: the deferred close is not for it
	go d.Warm(ctx)
	// Start-up's project loads leave a few MB of garbage the runtime would keep mapped for a
	// long while; an idle berth should hold only what it uses.
	debug.FreeOSMemory()

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down; letting deploys in flight finish", "timeout", cfg.ShutdownTimeout)
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.shutdown(stopCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(stopCtx)
	}
	if err := d.Wait(stopCtx); err != nil {
		log.Warn("deploys still running at shutdown were abandoned", "err", err)
	}
	w.close(stopCtx)
	return nil
}

// handlerConfig is what the HTTP side gets: the webhook settings, and the deployer, history,
// metrics and status page behind the API and the page.
func handlerConfig(w *wiring, events *statuspage.Hub) handler.Config {
	cfg, d := w.cfg, w.deployer
	webhooks := cfg.Webhooks
	webhooks.Ops = handler.Ops{APIToken: cfg.APIToken, Services: d, History: w.history, Images: d, Metrics: w.metrics, ServeMetrics: cfg.MetricsAddr == "",
		Deployer: d, Events: events, Approver: d, DeployToken: handler.ParseSecrets(string(cfg.DeployToken)), DeployServices: cfg.DeployServices,
		APITokenCanDeploy: cfg.APITokenCanDeploy}
	webhooks.Limits = cfg.Exposure.Limits()
	return webhooks
}

// recoverAtStart finishes or undoes the deploys a crash left unfinished (from the journals,
// then from the engine's containers) and queues again the pushes accepted but not deployed.
func recoverAtStart(ctx context.Context, cfg config.Config, d *deployer.Deployer, log *slog.Logger) {
	if err := d.Reconcile(ctx); err != nil {
		// The engine may not be up yet; each service's next deploy repairs it too.
		log.Error("repair unfinished deploys", "err", err)
	}
	if err := d.RepairLeftovers(ctx); err != nil {
		log.Error("repair unfinished deploys from the engine's containers", "err", err)
	}
	if cfg.Discover() {
		logDiscovered(ctx, d, log)
	}
	if err := d.Resume(ctx); err != nil {
		log.Error("resume pushes accepted before berth stopped; they stay owed until the next start", "err", err)
	}
	logStateDir(cfg, log)
}

// logStateDir says once at start where berth keeps what must survive a crash, or that it
// keeps it nowhere.
func logStateDir(cfg config.Config, log *slog.Logger) {
	switch {
	case cfg.StateDir == "" && len(cfg.StateDirTried) > 0:
		log.Warn("no writable state directory (tried " + strings.Join(cfg.StateDirTried, ", ") + "): accepted pushes do not survive a crash " +
			"and the deploy history is lost when berth stops; set STATE_DIR to a writable directory (a volume)")
	case cfg.StateDir == "":
		log.Warn("STATE_DIR=none: accepted pushes do not survive a crash and the deploy history is lost when berth stops; " +
			"an interrupted deploy is still repaired at start from the engine's containers")
	case cfg.StateDirDefaulted:
		log.Info("STATE_DIR is not set; keeping accepted pushes, deploy journals and the history in the default directory", "state_dir", cfg.StateDir)
	}
}

// serveMetrics serves /metrics on addr alone, when METRICS_ADDR sets one; nil otherwise.
func serveMetrics(addr string, metrics *handler.Metrics, log *slog.Logger, served chan<- error) (*http.Server, error) {
	if addr == "" {
		return nil, nil
	}
	mln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDR=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	srv := newHTTPServer(mux, log)
	log.Info("metrics listening", "addr", mln.Addr().String())
	go func() { served <- srv.Serve(mln) }()
	return srv, nil
}

// serveOn hands the listener berth opened while it waited for the engine over to h, or, when
// berth did not wait, opens the listeners with h.
func serveOn(early *waiting, cfg config.Config, h http.Handler, log *slog.Logger) (*web, error) {
	if early == nil {
		return listen(cfg.Exposure, cfg.ListenAddr, cfg.StateDir, h, log)
	}
	early.swap.set(h)
	return early.web, nil
}

// logDiscovered says at start which projects berth found and which it cannot serve, and why.
func logDiscovered(ctx context.Context, d *deployer.Deployer, log *slog.Logger) {
	found, err := d.Projects(ctx)
	if err != nil {
		log.Warn("discover compose projects", "err", err)
		return
	}
	if len(found) == 0 {
		log.Warn("no compose project has containers on this engine yet; berth looks again at every push")
	}
	for _, p := range found {
		switch {
		case !p.Allowed:
			log.Info("project discovered, not allowed by PROJECTS/SKIP_PROJECTS", "project", p.Name)
		case p.Itself:
			log.Debug("project discovered: berth itself (not redeployed)", "project", p.Name)
		case !p.Readable:
			log.Warn("project discovered but berth cannot read its files; add the mount to berth's container", "project", p.Name, "problem", p.Problem, "mount", p.Mount)
		case p.Problem != "":
			log.Warn("project discovered but does not load; fix its compose files", "project", p.Name, "problem", p.Problem)
		default:
			log.Info("project discovered", "project", p.Name, "dir", p.Spec.Dir, "files", strings.Join(p.Spec.Files, ","),
				"profiles", strings.Join(p.Spec.Profiles, ","))
		}
	}
}

// loadConfigured stops berth at start when a project PROJECT_DIR names does not load: every
// push would fail the same way, and the sender would be the first to know.
func loadConfigured(ctx context.Context, discover bool, d *deployer.Deployer) error {
	if discover {
		return nil
	}
	projects, err := d.Projects(ctx)
	if err != nil {
		return err
	}
	for _, p := range projects {
		if p.Problem != "" {
			return fmt.Errorf("the project in %s does not load: %s; fix its compose files (docker compose config shows the same error) or PROJECT_DIR", p.Spec.Dir, p.Problem)
		}
	}
	return nil
}
