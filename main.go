// Command berth redeploys docker compose services when a registry reports a push.
package main

import (
	"cmp"
	"context"
	"errors"
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
	"syscall"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
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
	StateDir        string        `envconfig:"STATE_DIR"`                  // deploy journals and replaced-image lists; the compose file mounts a volume
	HealthTimeout   time.Duration `envconfig:"HEALTH_TIMEOUT" default:"60s"`
	HealthSettle    time.Duration `envconfig:"HEALTH_SETTLE" default:"5s"`
	KeepImages      int           `envconfig:"KEEP_IMAGES" default:"2"`
	RetryFor        time.Duration `envconfig:"RETRY_FOR" default:"10m"`
	APIToken        string        `envconfig:"API_TOKEN"` // the read API's bearer token (image inspection); off when unset

	// The default pre-deploy gate; a service's berth.gate.* labels override it.
	GateImage   string        `envconfig:"GATE_IMAGE"`
	GateCommand string        `envconfig:"GATE_COMMAND"`
	GateURL     string        `envconfig:"GATE_URL"`
	GateTimeout time.Duration `envconfig:"GATE_TIMEOUT" default:"5m"`
	GateNetwork string        `envconfig:"GATE_NETWORK" default:"none"`

	// CrashAfter is a test hook: berth kills itself with SIGKILL after this deploy step.
	CrashAfter string `envconfig:"BERTH_TEST_CRASH_AFTER"`

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
		"API_TOKEN", "GATE_IMAGE", "GATE_COMMAND", "GATE_URL", "GATE_TIMEOUT", "GATE_NETWORK"}
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
		value, file := os.Getenv(v.env), os.Getenv(v.env+"_FILE")
		if file != "" {
			if value != "" {
				return c, fmt.Errorf("%s and %s_FILE are both set; set only one", v.env, v.env)
			}
			b, err := os.ReadFile(file)
			if err != nil {
				return c, fmt.Errorf("%s_FILE: %w", v.env, err)
			}
			// One value per line or comma-separated, as in the variable.
			value = strings.ReplaceAll(string(b), "\n", ",")
		}
		*v.dst(&c.Webhooks) = handler.ParseSecrets(value)
	}
	c.Webhooks.APIToken = handler.ParseSecrets(c.APIToken)
	return c, c.validate()
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
func (c config) gate() deployer.GateConfig {
	return deployer.GateConfig{Image: c.GateImage, Command: c.GateCommand, URL: c.GateURL, Timeout: c.GateTimeout, Network: c.GateNetwork}
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
	cmd := "serve"
	if len(args) > 1 {
		cmd = args[1]
	}
	switch cmd {
	case "serve":
	case "socket-proxy":
		return runSocketProxy(ctx, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "berth", version())
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		return fmt.Errorf("unknown command %q\n%s", cmd, usage)
	}
	cfg, err := loadConfig()
	if err != nil {
		return err
	}
	log := cfg.logger(stderr)

	docker, err := client.New(client.FromEnv)
	if err != nil {
		return fmt.Errorf("docker client: %w", err)
	}
	defer docker.Close()

	projects, err := deployer.DetectHostDirs(ctx, docker, cfg.projects(environ))
	if err != nil {
		return err
	}
	self, err := deployer.FindSelf(ctx, docker)
	if err != nil {
		log.Warn("cannot tell which compose service berth runs as; a push of berth's own image could stop berth mid-deploy", "err", err)
	} else if self.Project != "" {
		log.Info("berth runs as a compose service and will not redeploy it", "project", self.Project, "service", self.Service)
	}

	var registryAuth deployer.RegistryAuth
	if cfg.RegistryConfig != "" {
		if registryAuth, err = deployer.LoadRegistryAuth(cfg.RegistryConfig); err != nil {
			return fmt.Errorf("REGISTRY_AUTH_CONFIG: %w", err)
		}
	}
	if self.SwarmService != "" {
		log.Info("berth runs as a swarm service and will not update it", "stack", self.Stack, "service_id", self.SwarmService)
	}

	deployCtx, cancelDeploys := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeploys()
	d := deployer.New(deployCtx, docker, deployer.Options{
		Projects:       projects,
		Owners:         cfg.Owner,
		ComposeVersion: cfg.ComposeVersion,
		Parallel:       cfg.Parallel,
		Logger:         log,
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
	})
	if cfg.StateDir == "" {
		log.Warn("STATE_DIR is not set: a deploy interrupted by a crash is not repaired at the next start")
	}
	if err := d.Reconcile(ctx); err != nil {
		// The engine may not be up yet; each service's next deploy repairs it too.
		log.Error("repair unfinished deploys", "err", err)
	}
	if cfg.discover() {
		logDiscovered(ctx, d, log)
	}

	webhooks := cfg.Webhooks
	webhooks.Limits = cfg.Exposure.limits(&handler.Counters{}) // refusal counts, for a metrics endpoint to read
	srv, err := cfg.Exposure.listen(cfg.ListenAddr, cfg.StateDir, handler.NewServer(webhooks, d, log), log)
	if err != nil {
		return err
	}
	log.Info("listening", append(srv.logAttrs(), "owner", strings.Join(cfg.Owner, ","), "project_dir", cfg.ProjectDir,
		"credentials", strings.Join(cfg.enabledCredentials(), ","))...)
	srv.warnPlainHTTP(cfg.urlSecretCredentials(), log)
	served := make(chan error, 2)
	srv.serve(served)

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
	if err := d.Wait(stopCtx); err != nil {
		log.Warn("deploys still running at shutdown were abandoned", "err", err)
	}
	return nil
}

const usage = `usage: berth [serve|socket-proxy|version|help]

  serve         receive registry webhooks and redeploy compose services (default)
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
