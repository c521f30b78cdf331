// Package config is berth's configuration: every variable, its default and its check, read
// through a getenv function so that nothing below main reads the process environment.
package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/handler"
	"github.com/berth-dev/berth/internal/notify"
)

// minSecretLen keeps every shared secret out of guessing range.
const minSecretLen = 16

// Config is berth's whole configuration, read from the environment.
type Config struct {
	Owner           []string      `envconfig:"OWNER"`
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
	StateDir        string        `envconfig:"STATE_DIR"`                  // journals, accepted pushes, image lists, history; unset: a writable default (statedir.go); "none": memory only
	HealthTimeout   time.Duration `envconfig:"HEALTH_TIMEOUT" default:"60s"`
	HealthSettle    time.Duration `envconfig:"HEALTH_SETTLE" default:"5s"`
	KeepImages      int           `envconfig:"KEEP_IMAGES" default:"2"`
	RetryFor        time.Duration `envconfig:"RETRY_FOR" default:"10m"`
	PullTimeout     time.Duration `envconfig:"PULL_TIMEOUT" default:"10m"`     // bound on each image pull
	RegistryTimeout time.Duration `envconfig:"REGISTRY_TIMEOUT" default:"30s"` // bound on each registry request berth makes itself

	// StateDirDefaulted says STATE_DIR was unset and took the first writable of StateDirTried.
	StateDirDefaulted bool     `ignored:"true"`
	StateDirTried     []string `ignored:"true"`

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
	// GHCRHost is the registry host GitHub deliveries may deploy from (GitHub Enterprise's own).
	GHCRHost string `envconfig:"GHCR_HOST" default:"ghcr.io"`
	// DeployServices limits DEPLOY_TOKEN to these project/service (or project/*) entries.
	DeployServices []string `envconfig:"DEPLOY_SERVICES"`
	// APITokenCanDeploy lets API_TOKEN call POST /api/deploy too (the page's buttons always may).
	APITokenCanDeploy bool `envconfig:"API_TOKEN_CAN_DEPLOY"`

	// Secrets with a _FILE variant (see secretVar); not envconfig's.
	APIToken        handler.Secret  `ignored:"true"`
	DeployToken     handler.Secret  `ignored:"true"` // DEPLOY_TOKEN: POST /api/deploy only (deploytoken.go)
	PullCredentials handler.Secret  `ignored:"true"`
	Notify          []notify.Target `ignored:"true"`

	// Webhook credentials, one variable per sender kind (see credentialVars); not envconfig's.
	Webhooks handler.Config `ignored:"true"`

	Exposure // TLS, trusted proxies and abuse limits (exposure.go)
	Watching // watch mode (watch.go)

	// Home is the user's home directory, where DOCKER_CONFIG defaults to (~/.docker).
	Home string `envconfig:"HOME"`
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
		"PARALLEL", "SHUTDOWN_TIMEOUT", "BACKEND", "SWARM_TIMEOUT", "REGISTRY_AUTH_CONFIG", "STATE_DIR", "HEALTH_TIMEOUT", "HEALTH_SETTLE", "KEEP_IMAGES", "RETRY_FOR", "PULL_TIMEOUT", "REGISTRY_TIMEOUT", "BERTH_TEST_CRASH_AFTER",
		"API_TOKEN", "GATE_IMAGE", "GATE_COMMAND", "GATE_URL", "GATE_TIMEOUT", "GATE_NETWORK",
		"HISTORY_LIMIT", "METRICS_ADDR", "NOTIFY_TIMEOUT", "DRY_RUN", "OPT_IN",
		"API_TOKEN_FILE", "DEPLOY_TOKEN", "DEPLOY_TOKEN_FILE", "DEPLOY_SERVICES", "API_TOKEN_CAN_DEPLOY", "PULL_CREDENTIALS", "PULL_CREDENTIALS_FILE", "NOTIFY_URLS", "NOTIFY_URLS_FILE"}
	vars = append(vars, exposureVars()...)
	vars = append(vars, watchVars()...)
	for _, v := range credentialVars() {
		vars = append(vars, v.env, v.env+"_FILE")
	}
	return vars
}

// Load reads the configuration through getenv and checks it; the error names the variable to fix.
func Load(getenv func(string) string) (Config, error) {
	var c Config
	if err := decode(&c, getenv); err != nil {
		return c, err
	}
	for _, v := range credentialVars() {
		value, err := ReadSecret(getenv, v.env)
		if err != nil {
			return c, err
		}
		*v.dst(&c.Webhooks) = handler.ParseSecrets(value)
	}
	c.Webhooks.DistributionHost = c.DistributionHost
	c.Webhooks.GHCRHost = strings.ToLower(c.GHCRHost)
	for i, o := range c.Owner {
		c.Owner[i] = strings.TrimSpace(o)
	}
	c.resolveStateDir(getenv)
	if err := c.loadOps(getenv); err != nil {
		return c, err
	}
	return c, c.checkProjectDirs()
}

// checkProjectDirs stops berth at start when a PROJECT_DIR entry is not a directory berth can
// see, instead of answering every webhook with a load error.
func (c Config) checkProjectDirs() error {
	if c.Discover() {
		return nil
	}
	for _, dir := range c.ProjectDirs() {
		st, err := os.Stat(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("PROJECT_DIR=%s does not exist as berth sees it; mount the project directory into berth's container at that path, or fix PROJECT_DIR", dir)
		case err != nil:
			return fmt.Errorf("PROJECT_DIR=%s: %w", dir, err)
		case !st.IsDir():
			return fmt.Errorf("PROJECT_DIR=%s is a file; set it to the directory that holds the compose file (or name the file with COMPOSE_FILE)", dir)
		}
	}
	return nil
}

// ReadSecret reads a secret from VAR, or from the file VAR_FILE names (lines become commas).
func ReadSecret(getenv func(string) string, env string) (string, error) {
	value, file := getenv(env), getenv(env+"_FILE")
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
func (c *Config) loadOps(getenv func(string) string) error {
	token, err := ReadSecret(getenv, "API_TOKEN")
	if err != nil {
		return err
	}
	if c.APIToken = handler.Secret(strings.TrimSpace(token)); c.APIToken != "" && len(c.APIToken) < minSecretLen {
		return fmt.Errorf("API_TOKEN is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", len(c.APIToken), minSecretLen)
	}
	// The image inspection API shares the status API's token.
	c.Webhooks.APIToken = handler.ParseSecrets(string(c.APIToken))
	if err := c.loadDeployToken(getenv); err != nil {
		return err
	}
	auth, err := ReadSecret(getenv, "PULL_CREDENTIALS")
	if err != nil {
		return err
	}
	c.PullCredentials = handler.Secret(auth)
	urls, err := ReadSecret(getenv, "NOTIFY_URLS")
	if err != nil {
		return err
	}
	if c.Notify, err = notify.ParseTargets(urls); err != nil {
		return err
	}
	if c.HistoryLimit < 1 {
		return fmt.Errorf("HISTORY_LIMIT=%d must be at least 1", c.HistoryLimit)
	}
	return c.Validate()
}

// Credentials are the registry logins for pulls: the config.json at REGISTRY_AUTH_CONFIG, else
// DOCKER_CONFIG's (default ~/.docker), then PULL_CREDENTIALS.
func (c Config) Credentials() (registry.Credentials, error) {
	path := c.RegistryConfig
	if path == "" {
		dir := c.DockerConfig
		if dir == "" && c.Home != "" {
			dir = filepath.Join(c.Home, ".docker")
		}
		if dir != "" {
			path = filepath.Join(dir, "config.json")
		}
	}
	return registry.LoadCredentials(path, string(c.PullCredentials))
}
