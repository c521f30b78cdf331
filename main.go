// Command berth redeploys docker compose services when a registry reports a push.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/handler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		os.Exit(1)
	}
}

// minSecretLen keeps every shared secret out of guessing range.
const minSecretLen = 16

// config is berth's whole configuration, read from the environment.
type config struct {
	Owner           []string      `envconfig:"OWNER" required:"true"`
	ProjectDir      string        `envconfig:"PROJECT_DIR"`      // one or more directories, comma-separated; unset: discover
	HostProjectDir  string        `envconfig:"HOST_PROJECT_DIR"` // their host paths, when berth cannot inspect its own mounts
	ComposeFile     string        `envconfig:"COMPOSE_FILE"`
	ProjectName     string        `envconfig:"COMPOSE_PROJECT_NAME"`
	Profiles        string        `envconfig:"COMPOSE_PROFILES"`
	ComposeVersion  string        `envconfig:"COMPOSE_VERSION"`
	AllowProjects   []string      `envconfig:"PROJECTS"`      // compose project names berth may touch; empty: all
	SkipProjects    []string      `envconfig:"SKIP_PROJECTS"` // compose project names berth never touches
	ListenAddr      string        `envconfig:"LISTEN_ADDR" default:":8080"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text"`
	Parallel        int           `envconfig:"PARALLEL" default:"2"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"5m"`
	Backend         string        `envconfig:"BACKEND" default:"auto"`     // auto, compose or swarm
	SwarmTimeout    time.Duration `envconfig:"SWARM_TIMEOUT" default:"5m"` // bound on a swarm update, and on its rollback
	RegistryConfig  string        `envconfig:"REGISTRY_AUTH_CONFIG"`       // a docker config.json whose credentials go to the swarm
	StateDir        string        `envconfig:"STATE_DIR"`                  // deploy journals, replaced-image lists and the deploy history; the compose file mounts a volume
	HealthTimeout   time.Duration `envconfig:"HEALTH_TIMEOUT" default:"60s"`
	HealthSettle    time.Duration `envconfig:"HEALTH_SETTLE" default:"5s"`
	KeepImages      int           `envconfig:"KEEP_IMAGES" default:"2"`
	RetryFor        time.Duration `envconfig:"RETRY_FOR" default:"10m"`

	// The default pre-deploy gate; a service's berth.gate.* labels override it.
	GateImage   string        `envconfig:"GATE_IMAGE"`
	GateCommand string        `envconfig:"GATE_COMMAND"`
	GateURL     string        `envconfig:"GATE_URL"`
	GateTimeout time.Duration `envconfig:"GATE_TIMEOUT" default:"5m"`
	GateNetwork string        `envconfig:"GATE_NETWORK" default:"none"`

	// CrashAfter is a test hook: berth kills itself with SIGKILL after this deploy step.
	CrashAfter string `envconfig:"BERTH_TEST_CRASH_AFTER"`

	HistoryLimit  int           `envconfig:"HISTORY_LIMIT" default:"1000"`
	MetricsAddr   string        `envconfig:"METRICS_ADDR"` // /metrics on its own listener; unset: on LISTEN_ADDR
	NotifyTimeout time.Duration `envconfig:"NOTIFY_TIMEOUT" default:"10s"`
	DryRun        bool          `envconfig:"DRY_RUN"`
	OptIn         bool          `envconfig:"OPT_IN"` // deploy only services labelled berth.enable=true
	DockerConfig  string        `envconfig:"DOCKER_CONFIG"`
	// DistributionHost names a distribution registry as compose files do, when pushers reach it
	// under another name (request.host of its events).
	DistributionHost string `envconfig:"DISTRIBUTION_HOST"`

	// Secrets with a _FILE variant (see secretVar); not envconfig's.
	APIToken        handler.Secret          `ignored:"true"`
	PullCredentials handler.Secret          `ignored:"true"`
	Notify          []deployer.NotifyTarget `ignored:"true"`

	// Webhook credentials, one variable per sender kind (see credentialVars); not envconfig's.
	Webhooks handler.Config `ignored:"true"`

	Exposure // TLS, trusted proxies and abuse limits (exposure.go)
}

// credentialVar is the variable holding one sender kind's credential: a comma-separated list,
// so a new value can be added before the old one is removed, or read from VAR_FILE instead.
type credentialVar struct {
	env string
	dst func(*handler.Config) *handler.Secrets
}

// credentialVars lists every sender kind's credential variable. SECRET keeps its historical
// name and is Docker Hub's URL secret only; Quay has its own.
func credentialVars() []credentialVar {
	return []credentialVar{
		{"SECRET", func(c *handler.Config) *handler.Secrets { return &c.DockerHub }},
		{"QUAY_SECRET", func(c *handler.Config) *handler.Secrets { return &c.Quay }},
		{"DISTRIBUTION_TOKEN", func(c *handler.Config) *handler.Secrets { return &c.Distribution }},
		{"GHCR_SECRET", func(c *handler.Config) *handler.Secrets { return &c.GHCR }},
		{"HARBOR_AUTH_HEADER", func(c *handler.Config) *handler.Secrets { return &c.Harbor }},
		{"GITEA_SECRET", func(c *handler.Config) *handler.Secrets { return &c.Gitea }},
		{"STANDARD_WEBHOOKS_SECRET", func(c *handler.Config) *handler.Secrets { return &c.StandardWebhooks }},
	}
}

// ownVars are the variables berth reads itself; they are kept out of the environment the
// compose files are interpolated with, so ${SECRET} in a compose file cannot leak berth's.
func ownVars() []string {
	vars := []string{"OWNER", "PROJECT_DIR", "HOST_PROJECT_DIR", "PROJECTS", "SKIP_PROJECTS", "COMPOSE_VERSION", "LISTEN_ADDR", "LOG_LEVEL", "LOG_FORMAT",
		"PARALLEL", "SHUTDOWN_TIMEOUT", "BACKEND", "SWARM_TIMEOUT", "REGISTRY_AUTH_CONFIG", "STATE_DIR", "HEALTH_TIMEOUT", "HEALTH_SETTLE", "KEEP_IMAGES", "RETRY_FOR", "BERTH_TEST_CRASH_AFTER",
		"API_TOKEN", "GATE_IMAGE", "GATE_COMMAND", "GATE_URL", "GATE_TIMEOUT", "GATE_NETWORK",
		"HISTORY_LIMIT", "METRICS_ADDR", "NOTIFY_TIMEOUT", "DRY_RUN", "OPT_IN",
		"API_TOKEN_FILE", "PULL_CREDENTIALS", "PULL_CREDENTIALS_FILE", "NOTIFY_URLS", "NOTIFY_URLS_FILE"}
	vars = append(vars, exposureVars()...)
	for _, v := range credentialVars() {
		vars = append(vars, v.env, v.env+"_FILE")
	}
	return vars
}

// loadConfig reads and checks the configuration; the error names the variable to fix.
func loadConfig() (config, error) {
	var c config
	if err := envconfig.Process("", &c); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return c, fmt.Errorf("%s=%q is not a valid %s", pe.KeyName, pe.Value, pe.TypeName)
		}
		return c, fmt.Errorf("configuration: %w", err)
	}
	for _, v := range credentialVars() {
		value, err := secretVar(v.env)
		if err != nil {
			return c, err
		}
		*v.dst(&c.Webhooks) = handler.ParseSecrets(value)
	}
	c.Webhooks.DistributionHost = c.DistributionHost
	return c, c.loadOps()
}

// secretVar reads a secret from VAR, or from the file VAR_FILE names (lines become commas).
func secretVar(env string) (string, error) {
	value, file := os.Getenv(env), os.Getenv(env+"_FILE")
	if file == "" {
		return value, nil
	}
	if value != "" {
		return "", fmt.Errorf("%s and %s_FILE are both set; set only one", env, env)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("%s_FILE: %w", env, err)
	}
	// One value per line or comma-separated, as in the variable.
	return strings.Trim(strings.ReplaceAll(string(b), "\n", ","), ","), nil
}

// loadOps reads the operator settings' secrets and validates the whole configuration.
func (c *config) loadOps() error {
	token, err := secretVar("API_TOKEN")
	if err != nil {
		return err
	}
	if c.APIToken = handler.Secret(strings.TrimSpace(token)); c.APIToken != "" && len(c.APIToken) < minSecretLen {
		return fmt.Errorf("API_TOKEN is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", len(c.APIToken), minSecretLen)
	}
	// The image inspection API shares the status API's token.
	c.Webhooks.APIToken = handler.ParseSecrets(string(c.APIToken))
	auth, err := secretVar("PULL_CREDENTIALS")
	if err != nil {
		return err
	}
	c.PullCredentials = handler.Secret(auth)
	urls, err := secretVar("NOTIFY_URLS")
	if err != nil {
		return err
	}
	if c.Notify, err = deployer.ParseNotifyTargets(urls); err != nil {
		return err
	}
	if c.HistoryLimit < 1 {
		return fmt.Errorf("HISTORY_LIMIT=%d must be at least 1", c.HistoryLimit)
	}
	return c.validate()
}

// credentials are the registry logins for pulls: the config.json at REGISTRY_AUTH_CONFIG, else
// DOCKER_CONFIG's (default ~/.docker), then PULL_CREDENTIALS.
func (c config) credentials() (deployer.Credentials, error) {
	path := c.RegistryConfig
	if path == "" {
		dir := c.DockerConfig
		if dir == "" {
			if home, err := os.UserHomeDir(); err == nil {
				dir = filepath.Join(home, ".docker")
			}
		}
		if dir != "" {
			path = filepath.Join(dir, "config.json")
		}
	}
	return deployer.LoadCredentials(path, string(c.PullCredentials))
}

// validate rejects values envconfig lets through (its required accepts an empty string).
func (c config) validate() error {
	c.Owner = slices.DeleteFunc(c.Owner, func(s string) bool { return strings.TrimSpace(s) == "" })
	switch {
	case len(c.Owner) == 0:
		return errors.New("OWNER is empty; set it to the Docker Hub namespace(s) whose pushes berth may deploy, e.g. OWNER=acme")
	case c.Parallel < 1:
		return fmt.Errorf("PARALLEL=%d must be at least 1", c.Parallel)
	case !slices.Contains([]string{"", deployer.BackendAuto, deployer.BackendCompose, deployer.BackendSwarm}, c.Backend):
		return fmt.Errorf("BACKEND=%q is not auto, compose or swarm", c.Backend)
	case c.SwarmTimeout < 0:
		return fmt.Errorf("SWARM_TIMEOUT=%s must be positive, e.g. 5m", c.SwarmTimeout)
	case c.HealthTimeout < 0 || c.HealthSettle < 0:
		return fmt.Errorf("HEALTH_TIMEOUT=%s and HEALTH_SETTLE=%s must be positive durations such as 60s (0 takes the default)", c.HealthTimeout, c.HealthSettle)
	case c.KeepImages < 0:
		return fmt.Errorf("KEEP_IMAGES=%d must be 0 or more", c.KeepImages)
	case c.RetryFor < 0:
		return fmt.Errorf("RETRY_FOR=%s must not be negative", c.RetryFor)
	case !c.discover() && len(c.projectDirs()) == 0:
		return errors.New("PROJECT_DIR is empty; set it to the compose project directory (several: comma-separated), or unset it to discover the projects")
	case c.discover() && c.ProjectName != "":
		return errors.New("COMPOSE_PROJECT_NAME names a single project but neither PROJECT_DIR nor COMPOSE_FILE says where it is; set PROJECT_DIR, or unset COMPOSE_PROJECT_NAME and use PROJECTS=name to limit discovery")
	case c.discover() && c.HostProjectDir != "":
		return errors.New("HOST_PROJECT_DIR needs PROJECT_DIR; discovered projects take their host paths from compose's labels")
	case len(c.projectDirs()) > 1 && c.ProjectName != "":
		return errors.New("COMPOSE_PROJECT_NAME applies to a single project but PROJECT_DIR lists several; name each project in its compose file (name:) or its .env")
	case c.DistributionHost != "" && !deployer.IsRegistryHost(c.DistributionHost):
		return fmt.Errorf("DISTRIBUTION_HOST=%q is not a registry host; give it as compose files name the registry, e.g. registry.example.com or registry.example.com:5000", c.DistributionHost)
	case c.HostProjectDir != "" && len(strings.Split(c.HostProjectDir, ",")) != len(c.projectDirs()):
		return fmt.Errorf("HOST_PROJECT_DIR lists %d paths for %d PROJECT_DIR entries; give one host path per project directory, in the same order", len(strings.Split(c.HostProjectDir, ",")), len(c.projectDirs()))
	}
	if err := c.validateLogging(); err != nil {
		return err
	}
	if err := c.Exposure.validate(c.StateDir); err != nil {
		return err
	}
	if err := deployer.CheckComposeVersion(c.ComposeVersion); err != nil {
		return err
	}
	if err := c.validateAPIAndGate(); err != nil {
		return err
	}
	return c.validateCredentials()
}

// validateAPIAndGate checks API_TOKEN's strength and that the GATE_* variables make one gate.
func (c config) validateAPIAndGate() error {
	for i, s := range c.Webhooks.APIToken {
		if len(s) < minSecretLen {
			return fmt.Errorf("API_TOKEN value %d is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", i+1, len(s), minSecretLen)
		}
	}
	if c.GateTimeout <= 0 {
		return fmt.Errorf("GATE_TIMEOUT=%s must be positive", c.GateTimeout)
	}
	if err := c.gate().Validate(); err != nil {
		return fmt.Errorf("GATE_*: %w", err)
	}
	return nil
}

// gate is the default pre-deploy gate the GATE_* variables describe.
func (c config) gate() gate.Config {
	return gate.Config{Image: c.GateImage, Command: c.GateCommand, URL: c.GateURL, Timeout: c.GateTimeout, Network: c.GateNetwork}
}

// validateLogging checks LOG_LEVEL and LOG_FORMAT, which every subcommand reads.
func (c config) validateLogging() error {
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return fmt.Errorf("LOG_FORMAT=%q must be text or json", c.LogFormat)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return fmt.Errorf("LOG_LEVEL=%q must be debug, info, warn or error", c.LogLevel)
	}
	return nil
}

// validateCredentials wants at least one sender kind enabled and every credential strong enough.
func (c config) validateCredentials() error {
	var names []string
	enabled := 0
	for _, v := range credentialVars() {
		names = append(names, v.env)
		secrets := *v.dst(&c.Webhooks)
		enabled += min(len(secrets), 1)
		for i, s := range secrets {
			n := len(s)
			if v.env == "STANDARD_WEBHOOKS_SECRET" {
				key, err := handler.WebhookKey(s)
				if err != nil || !strings.HasPrefix(string(s), "whsec_") {
					return fmt.Errorf("STANDARD_WEBHOOKS_SECRET value %d is not whsec_<base64>, e.g. whsec_$(openssl rand -base64 32)", i+1)
				}
				n = len(key)
			}
			if n < minSecretLen {
				return fmt.Errorf("%s value %d is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", v.env, i+1, n, minSecretLen)
			}
		}
	}
	if enabled == 0 {
		return fmt.Errorf("no webhook sender is enabled; set at least one of %s (a random string of at least %d characters, e.g. from `openssl rand -hex 24`)",
			strings.Join(names, ", "), minSecretLen)
	}
	return nil
}

// urlSecretCredentials names the enabled credentials that senders present in the URL, where
// anything on the network path can read them unless berth is reached over HTTPS.
func (c config) urlSecretCredentials() []string {
	var out []string
	for _, v := range c.enabledCredentials() {
		if v == "SECRET" || v == "QUAY_SECRET" {
			out = append(out, v)
		}
	}
	return out
}

// enabledCredentials names the credential variables that are set: the sender kinds berth accepts.
func (c config) enabledCredentials() []string {
	var out []string
	for _, v := range credentialVars() {
		if len(*v.dst(&c.Webhooks)) > 0 {
			out = append(out, v.env)
		}
	}
	return out
}

func (c config) logger(w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.LogLevel))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// discover says whether berth finds the projects itself: neither PROJECT_DIR nor COMPOSE_FILE set.
func (c config) discover() bool {
	return strings.TrimSpace(c.ProjectDir) == "" && c.ComposeFile == ""
}

// filter is PROJECTS and SKIP_PROJECTS, blanks dropped.
func (c config) filter() deployer.ProjectFilter {
	clean := func(names []string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(s string) bool { return strings.TrimSpace(s) == "" })
	}
	return deployer.ProjectFilter{Allow: clean(c.AllowProjects), Deny: clean(c.SkipProjects)}
}

// composeEnviron is environ without berth's own variables, so ${OWNER} or a secret in a
// compose file cannot leak berth's.
func composeEnviron(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(ownVars(), k) {
			out = append(out, kv)
		}
	}
	return out
}

// projectDirs is PROJECT_DIR split on commas, blanks dropped; "." when only COMPOSE_FILE is set.
func (c config) projectDirs() []string {
	if strings.TrimSpace(c.ProjectDir) == "" && c.ComposeFile != "" {
		return []string{"."}
	}
	var dirs []string
	for _, d := range strings.Split(c.ProjectDir, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// projects turns PROJECT_DIR and the COMPOSE_* settings into the specs the deployer loads,
// resolving compose files against each project directory as users expect of a mounted project.
func (c config) projects(environ []string) []deployer.ProjectSpec {
	var hostDirs []string
	if c.HostProjectDir != "" {
		hostDirs = strings.Split(c.HostProjectDir, ",")
	}
	var specs []deployer.ProjectSpec
	for i, dir := range c.projectDirs() {
		spec := deployer.ProjectSpec{Dir: dir, Name: c.ProjectName}
		if i < len(hostDirs) {
			spec.HostDir = strings.TrimSpace(hostDirs[i])
		}
		if c.ComposeFile != "" {
			for _, f := range strings.Split(c.ComposeFile, ":") {
				if !filepath.IsAbs(f) {
					f = filepath.Join(dir, f)
				}
				spec.Files = append(spec.Files, f)
			}
		}
		if c.Profiles != "" {
			spec.Profiles = strings.Split(c.Profiles, ",")
		}
		spec.Environ = composeEnviron(environ)
		specs = append(specs, spec)
	}
	return specs
}

// run is berth: it returns when ctx ends (after a graceful stop) or on a fatal error.
// Configuration comes from the process environment (envconfig reads it directly); environ is
// the environment compose files are interpolated with.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", []string{}
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	if strings.HasPrefix(cmd, "-") && cmd != "-h" && cmd != "--help" && cmd != "--version" {
		cmd, rest = "serve", args[1:]
	}
	switch cmd {
	case "serve":
		if err := parseFlags(flag.NewFlagSet("serve", flag.ContinueOnError), rest, stdout, "serve",
			"Receive registry webhooks and redeploy compose services (the default command)."); err != nil {
			return noHelp(err)
		}
		return serve(ctx, environ, stderr)
	case "deploy":
		return runDeploy(ctx, rest, environ, stdout, stderr)
	case "status":
		return runStatus(ctx, rest, stdout)
	case "check":
		return runCheck(ctx, rest, environ, stdout, stderr)
	case "socket-proxy":
		return runSocketProxy(ctx, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "berth", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q; run berth help", cmd)
	}
}

// wiring is what serve and the CLI commands build from the configuration.
type wiring struct {
	cfg      config
	log      *slog.Logger
	docker   *client.Client
	deployer *deployer.Deployer
	history  *deployer.History
	notifier *deployer.Notifier
	metrics  *handler.Metrics
}

// wire reads the configuration and builds the deployer the way every command uses it; the
// deployer's OnRecord keeps history, counts metrics and queues notifications, then calls more.
func wire(ctx, deployCtx context.Context, environ []string, stderr io.Writer, more func(deployer.Record)) (*wiring, error) {
	cfg, err := loadConfig()
	if err != nil {
		return nil, err
	}
	w := &wiring{cfg: cfg, log: cfg.logger(stderr)}
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	if w.history, err = deployer.OpenHistory(cfg.StateDir, cfg.HistoryLimit); err != nil {
		return nil, err
	}
	if w.docker, err = client.New(client.FromEnv); err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	projects, err := deployer.DetectHostDirs(ctx, w.docker, cfg.projects(environ))
	if err != nil {
		w.docker.Close()
		return nil, err
	}
	self, err := deployer.FindSelf(ctx, w.docker)
	if err != nil {
		w.log.Warn("cannot tell which compose service berth runs as; a push of berth's own image could stop berth mid-deploy", "err", err)
	}
	// The swarm backend forwards the pull logins, unless its own REGISTRY_AUTH_CONFIG says otherwise.
	registryAuth := deployer.RegistryAuth(creds.ForHost)
	if cfg.RegistryConfig != "" {
		if registryAuth, err = deployer.LoadRegistryAuth(cfg.RegistryConfig); err != nil {
			return nil, fmt.Errorf("REGISTRY_AUTH_CONFIG: %w", err)
		}
	}
	if self.SwarmService != "" {
		w.log.Info("berth runs as a swarm service and will not update it", "stack", self.Stack, "service_id", self.SwarmService)
	}
	w.notifier = deployer.NewNotifier(cfg.Notify, deployer.NotifyOptions{Timeout: cfg.NotifyTimeout, Logger: w.log})
	var d *deployer.Deployer
	w.metrics = handler.NewMetrics(version(), func() int { return d.QueueDepth() })
	d = deployer.New(deployCtx, w.docker, deployer.Options{
		Projects:       projects,
		Owners:         cfg.Owner,
		ComposeVersion: cfg.ComposeVersion,
		Parallel:       cfg.Parallel,
		Logger:         w.log,
		Self:           self,
		Discover:       cfg.discover(),
		Filter:         cfg.filter(),
		Environ:        composeEnviron(environ),
		Backend:        cfg.Backend,
		SwarmTimeout:   cfg.SwarmTimeout,
		RegistryAuth:   registryAuth,
		Gate:           cfg.gate(),
		StateDir:       cfg.StateDir,
		HealthTimeout:  cfg.HealthTimeout,
		HealthSettle:   cfg.HealthSettle,
		KeepImages:     cmp.Or(cfg.KeepImages, -1), // 0 means keep none, not the default
		RetryFor:       cfg.RetryFor,
		CrashAfter:     cfg.CrashAfter,
		Crash:          func() { _ = syscall.Kill(os.Getpid(), syscall.SIGKILL) },
		DryRun:         cfg.DryRun,
		OptIn:          cfg.OptIn,
		Credentials:    creds,
		OnRecord: func(r deployer.Record) {
			if err := w.history.Add(r); err != nil {
				w.log.Error("deploy history not saved", "err", err)
			}
			w.metrics.Observe(r)
			w.notifier.Notify(r)
			if more != nil {
				more(r)
			}
		},
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
	w.docker.Close()
}

// serve is `berth serve`.
func serve(ctx context.Context, environ []string, stderr io.Writer) error {
	deployCtx, cancelDeploys := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeploys()
	w, err := wire(ctx, deployCtx, environ, stderr, nil)
	if err != nil {
		return err
	}
	cfg, log, d := w.cfg, w.log, w.deployer
	if err := d.Reconcile(ctx); err != nil {
		// The engine may not be up yet; each service's next deploy repairs it too.
		log.Error("repair unfinished deploys", "err", err)
	}
	if cfg.discover() {
		logDiscovered(ctx, d, log)
	}
	if cfg.StateDir == "" {
		log.Warn("STATE_DIR is not set: a deploy interrupted by a crash is not repaired at the next start, and the deploy history is lost when berth stops")
	}
	if cfg.DryRun {
		log.Warn("DRY_RUN is set: deploys are planned and recorded as would-deploy, nothing is pulled or recreated")
	}
	webhooks := cfg.Webhooks
	webhooks.Ops = handler.Ops{APIToken: cfg.APIToken, Services: d, History: w.history, Metrics: w.metrics, ServeMetrics: cfg.MetricsAddr == ""}
	webhooks.Limits = cfg.Exposure.limits(&handler.Counters{}) // refusal counts, for a metrics endpoint to read
	srv, err := cfg.Exposure.listen(cfg.ListenAddr, cfg.StateDir, handler.NewServer(webhooks, d, log), log)
	if err != nil {
		return err
	}
	served := make(chan error, 3)
	var metricsSrv *http.Server
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("METRICS_ADDR=%s: %w", cfg.MetricsAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", w.metrics.Handler())
		metricsSrv = newHTTPServer(mux, log)
		log.Info("metrics listening", "addr", mln.Addr().String())
		go func() { served <- metricsSrv.Serve(mln) }()
	}
	log.Info("listening", append(srv.logAttrs(), "owner", strings.Join(cfg.Owner, ","), "project_dir", cfg.ProjectDir,
		"credentials", strings.Join(cfg.enabledCredentials(), ","), "status_api", cfg.APIToken != "", "notify", len(cfg.Notify),
		"registry_logins", strings.Join(func() []string { c, _ := cfg.credentials(); return c.Hosts() }(), ","))...)
	srv.warnPlainHTTP(cfg.urlSecretCredentials(), log)
	srv.serve(served)
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

const usage = `usage: berth [command] [--help]

  serve         receive registry webhooks and redeploy compose services (default)
  deploy        redeploy one service now: berth deploy SERVICE [--image REF]
  status        show what runs, from a running berth's status API
  check         validate the configuration, projects, engine and registries; change nothing
  socket-proxy  forward to the Docker socket only the Engine API calls berth makes
  version       print the version

Configuration is read from environment variables; see README.md.`

// proxyConfig configures `berth socket-proxy`, read from the environment.
type proxyConfig struct {
	Listen          string        `envconfig:"SOCKET_PROXY_LISTEN" default:":2375"`
	Socket          string        `envconfig:"SOCKET_PROXY_SOCKET" default:"/var/run/docker.sock"`
	Exec            bool          `envconfig:"SOCKET_PROXY_EXEC" default:"false"`
	Swarm           bool          `envconfig:"SOCKET_PROXY_SWARM" default:"false"`
	ReadOnly        bool          `envconfig:"SOCKET_PROXY_READONLY" default:"false"`
	LogLevel        string        `envconfig:"LOG_LEVEL" default:"info"`
	LogFormat       string        `envconfig:"LOG_FORMAT" default:"text"`
	ShutdownTimeout time.Duration `envconfig:"SHUTDOWN_TIMEOUT" default:"5s"`
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

// runSocketProxy serves the filtering Docker socket proxy until ctx ends.
func runSocketProxy(ctx context.Context, stderr io.Writer) error {
	var pc proxyConfig
	if err := envconfig.Process("", &pc); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s=%q is not a valid %s", pe.KeyName, pe.Value, pe.TypeName)
		}
		return fmt.Errorf("configuration: %w", err)
	}
	if pc.Socket == "" {
		return errors.New("SOCKET_PROXY_SOCKET is empty; set it to the Docker socket's path, e.g. /var/run/docker.sock")
	}
	logCfg := config{LogLevel: pc.LogLevel, LogFormat: pc.LogFormat}
	if err := logCfg.validateLogging(); err != nil {
		return err
	}
	log := logCfg.logger(stderr)
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
		Handler:           handler.NewSocketProxy(pc.Socket, handler.ProxyPolicy{Exec: pc.Exec, Swarm: pc.Swarm, ReadOnly: pc.ReadOnly}, log),
		ReadHeaderTimeout: 10 * time.Second, // no other timeouts: events and pulls stream for long
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("socket proxy listening", "addr", network+"://"+ln.Addr().String(), "socket", pc.Socket, "exec", pc.Exec, "swarm", pc.Swarm, "readonly", pc.ReadOnly)
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

// version reports the module version stamped at build time, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// parseFlags parses a command's flags. --help prints the command's usage to stdout and
// returns flag.ErrHelp; a bad flag is one line of error. Flags may follow the arguments.
func parseFlags(fs *flag.FlagSet, args []string, stdout io.Writer, synopsis, doc string) error {
	fs.SetOutput(io.Discard)
	var positional []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			fmt.Fprintf(stdout, "usage: berth %s\n\n%s\n", synopsis, doc)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
			return flag.ErrHelp
		} else if err != nil {
			return fmt.Errorf("%s (see berth %s --help)", err, fs.Name())
		}
		if fs.NArg() == 0 {
			break
		}
		positional, args = append(positional, fs.Arg(0)), fs.Args()[1:]
	}
	_ = fs.Parse(append([]string{"--"}, positional...))
	return nil
}

// noHelp turns the --help "error" into success.
func noHelp(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

// runDeploy is `berth deploy SERVICE [--image REF]`: the deploy a push would make, by hand,
// through the same deployer; it waits for the outcome and fails unless the service deployed.
func runDeploy(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	image := fs.String("image", "", "image to deploy, repository:tag[@digest] (default: the image the compose file names)")
	if err := parseFlags(fs, args, stdout, "deploy SERVICE [--image REF]",
		"Redeploy SERVICE (service or project/service) now, as a push of its image would, with the same checks, and wait for the outcome.\n"+
			"Configuration comes from the same environment as berth serve."); err != nil {
		return noHelp(err)
	}
	if fs.NArg() != 1 {
		return errors.New("deploy needs exactly one SERVICE (service or project/service); see berth deploy --help")
	}
	var mu sync.Mutex
	var records []deployer.Record
	w, err := wire(ctx, ctx, environ, stderr, func(r deployer.Record) { mu.Lock(); records = append(records, r); mu.Unlock() })
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.NotifyTimeout*3)
		defer cancel()
		w.close(closeCtx)
	}()
	t, err := w.deployer.DeployService(ctx, fs.Arg(0), *image)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deploy %s: %s with %s\n", t.ID, strings.Join(t.Services, ", "), t.Image)
	if err := w.deployer.Wait(ctx); err != nil {
		return fmt.Errorf("interrupted while deploy %s runs: %w", t.ID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range records {
		fmt.Fprintf(stdout, "%s/%s: %s in %s\n", r.Project, r.Service, r.Outcome, r.Duration.Round(time.Millisecond))
		if r.Outcome != deployer.OutcomeDeployed && r.Outcome != deployer.OutcomeWouldDeploy && r.Outcome != deployer.OutcomeUpToDate {
			return fmt.Errorf("%s/%s %s: %s", r.Project, r.Service, r.Outcome, r.Error)
		}
	}
	return nil
}

// runStatus is `berth status`: it asks a running berth's status API (so it shows what that
// berth sees, through its mounts and socket) and prints a table.
func runStatus(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	defaultURL := os.Getenv("BERTH_URL")
	if defaultURL == "" {
		_, port, _ := net.SplitHostPort(os.Getenv("LISTEN_ADDR"))
		defaultURL = "http://127.0.0.1:" + cmp.Or(port, "8080")
	}
	base := fs.String("url", defaultURL, "base URL of the running berth (env BERTH_URL)")
	asJSON := fs.Bool("json", false, "print the status API's JSON instead of a table")
	if err := parseFlags(fs, args, stdout, "status [--url URL] [--json]",
		"Show every service berth serves: image, version, digest, containers, state and health.\n"+
			"Reads a running berth's status API with the token in API_TOKEN (or API_TOKEN_FILE)."); err != nil {
		return noHelp(err)
	}
	token, err := secretVar("API_TOKEN")
	if err != nil {
		return err
	}
	if token == "" {
		return errors.New("API_TOKEN is not set; berth status reads the status API with the token berth serve was given")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(*base, "/")+"/api/services", nil)
	if err != nil {
		return fmt.Errorf("--url %s: %w", *base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("no berth answers at %s: %w", *base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("berth at %s answered %s: %s", *base, resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var ans struct {
		Services []deployer.ServiceStatus `json:"services"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("berth at %s answered no status JSON: %w", *base, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tIMAGE\tVERSION\tDIGEST\tCREATED\tDEPLOYS\tCONTAINERS")
	for _, s := range ans.Services {
		var cs []string
		for _, c := range s.Containers {
			cs = append(cs, c.Name+" "+c.State+strings.TrimSuffix(" "+c.Health, " "))
		}
		digest := s.RepoDigest
		if _, d, ok := strings.Cut(digest, "@sha256:"); ok && len(d) > 12 {
			digest = d[:12]
		}
		created := ""
		if !s.ImageCreated.IsZero() {
			created = s.ImageCreated.UTC().Format(time.DateTime)
		}
		deploys := "yes"
		if !s.Deploys {
			deploys = "no"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Project, s.Service, s.Image, cmp.Or(s.ImageLabels["org.opencontainers.image.version"], "-"),
			cmp.Or(digest, "-"), cmp.Or(created, "-"), deploys+" ("+s.TagPolicy+")", cmp.Or(strings.Join(cs, ", "), "none"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, s := range ans.Services {
		for _, f := range s.FailedImages {
			fmt.Fprintf(stdout, "%s/%s rolled back from %s at %s (%s); a push of it is skipped, `berth deploy %s/%s` tries it\n",
				s.Project, s.Service, f.ID, f.At.UTC().Format(time.DateTime), f.Reason, s.Project, s.Service)
		}
	}
	return nil
}

// runCheck is `berth check`: it validates what berth serve would run with, and changes nothing.
func runCheck(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	push := fs.String("push", "", "also print which services a push of this image (repository:tag) would redeploy")
	if err := parseFlags(fs, args, stdout, "check [--push REF]",
		"Validate the environment, the compose project(s), the engine, registry logins, start-first and the hash rule,\n"+
			"and say which services a push would redeploy. Nothing is pulled, created or changed."); err != nil {
		return noHelp(err)
	}
	w, err := wire(ctx, ctx, environ, stderr, nil)
	if err != nil {
		return err
	}
	defer w.close(ctx)
	problems := 0
	report := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			problems++
		}
		fmt.Fprintf(stdout, "%s %s\n", mark, fmt.Sprintf(format, a...))
	}
	report(true, "configuration: OWNER=%s, senders %s, status API %v, %d notification URL(s), dry run %v, opt-in %v",
		strings.Join(w.cfg.Owner, ","), strings.Join(w.cfg.enabledCredentials(), ","), w.cfg.APIToken != "", len(w.cfg.Notify), w.cfg.DryRun, w.cfg.OptIn)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ping, err := w.docker.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		report(false, "engine at %s does not answer: %v", w.docker.DaemonHost(), err)
		return fmt.Errorf("check found %d problem(s)", problems)
	} else {
		report(true, "engine at %s answers (API %s)", w.docker.DaemonHost(), ping.APIVersion)
	}
	projects, err := w.deployer.Projects(ctx)
	if err != nil {
		return err
	}
	for _, p := range projects {
		switch {
		case !p.Allowed:
			fmt.Fprintf(stdout, "skip project %s: not allowed by PROJECTS/SKIP_PROJECTS\n", p.Name)
		case p.Problem != "":
			report(false, "project %s: %s", cmp.Or(p.Name, p.Spec.Dir), p.Problem)
		default:
			report(true, "project %s loads (%s)", p.Name, strings.Join(p.ConfigFiles, ", "))
		}
	}
	services, err := w.deployer.CheckServices(ctx)
	if err != nil {
		return err
	}
	for _, s := range services {
		name := s.Project + "/" + s.Service
		if s.Skipped != "" {
			fmt.Fprintf(stdout, "skip %s: %s\n", name, s.Skipped)
			continue
		}
		if s.Registry != nil {
			report(false, "%s: %v", name, s.Registry)
		} else {
			report(true, "%s: %s resolves in its registry; tag policy %s; config hash rule %s", name, s.Image, s.TagPolicy, s.HashRule)
		}
		if s.StartFirst != "" {
			fmt.Fprintf(stdout, "note %s: %s\n", name, s.StartFirst)
		}
	}
	policies, err := w.deployer.Policies(ctx)
	if err != nil {
		return err
	}
	for _, p := range policies {
		name := p.Project + "/" + p.Service
		if p.Problem != "" {
			report(false, "%s: %s", name, p.Problem)
		}
		if p.Gate != (gate.Config{}) {
			fmt.Fprintf(stdout, "gate %s: image=%q command=%q url=%q timeout=%s (from %s)\n", name, p.Gate.Image, p.Gate.Command, p.Gate.URL, p.Gate.Timeout, p.Gate.Source)
		}
		if p.Hooks.PreStop != "" || p.Hooks.PostStart != "" {
			fmt.Fprintf(stdout, "hooks %s: pre-stop=%q post-start=%q\n", name, p.Hooks.PreStop, p.Hooks.PostStart)
		}
	}
	if *push != "" {
		req, err := deployer.RequestFor(*push)
		if err != nil {
			return err
		}
		t, err := w.deployer.Plan(ctx, req)
		if err != nil {
			report(false, "a push of %s: %v", *push, err)
		} else if len(t.Services) == 0 {
			fmt.Fprintf(stdout, "a push of %s would redeploy nothing\n", t.Image)
		} else {
			fmt.Fprintf(stdout, "a push of %s would redeploy: %s\n", t.Image, strings.Join(t.Services, ", "))
		}
	}
	if problems > 0 {
		return fmt.Errorf("check found %d problem(s)", problems)
	}
	return nil
}
