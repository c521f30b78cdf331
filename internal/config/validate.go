package config

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/handler"
)

// Validate rejects values the loader lets through (blank list entries, out-of-range numbers,
// settings that contradict each other).
func (c Config) Validate() error {
	if err := c.validateOwner(); err != nil {
		return err
	}
	switch {
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
	case c.PullTimeout < 0 || c.RegistryTimeout < 0:
		return fmt.Errorf("PULL_TIMEOUT=%s and REGISTRY_TIMEOUT=%s must be positive durations such as 10m and 30s (0 takes the default)", c.PullTimeout, c.RegistryTimeout)
	case !c.Discover() && len(c.ProjectDirs()) == 0:
		return errors.New("PROJECT_DIR is empty; set it to the compose project directory (several: comma-separated), or unset it to discover the projects")
	case c.Discover() && c.ProjectName != "":
		return errors.New("COMPOSE_PROJECT_NAME names a single project but neither PROJECT_DIR nor COMPOSE_FILE says where it is; set PROJECT_DIR, or unset COMPOSE_PROJECT_NAME and use PROJECTS=name to limit discovery")
	case c.Discover() && c.HostProjectDir != "":
		return errors.New("HOST_PROJECT_DIR needs PROJECT_DIR; discovered projects take their host paths from compose's labels")
	case len(c.ProjectDirs()) > 1 && c.ProjectName != "":
		return errors.New("COMPOSE_PROJECT_NAME applies to a single project but PROJECT_DIR lists several; name each project in its compose file (name:) or its .env")
	case c.GHCRHost != "" && !registry.IsHost(c.GHCRHost):
		return fmt.Errorf("GHCR_HOST=%q is not a registry host; give the host GitHub's package_url names, e.g. containers.github.acme.example", c.GHCRHost)
	case c.DistributionHost != "" && !registry.IsHost(c.DistributionHost):
		return fmt.Errorf("DISTRIBUTION_HOST=%q is not a registry host; give it as compose files name the registry, e.g. registry.example.com or registry.example.com:5000", c.DistributionHost)
	case c.HostProjectDir != "" && len(strings.Split(c.HostProjectDir, ",")) != len(c.ProjectDirs()):
		return fmt.Errorf("HOST_PROJECT_DIR lists %d paths for %d PROJECT_DIR entries; give one host path per project directory, in the same order", len(strings.Split(c.HostProjectDir, ",")), len(c.ProjectDirs()))
	}
	if err := c.validateLogging(); err != nil {
		return err
	}
	if err := c.Exposure.Validate(c.StateDir); err != nil {
		return err
	}
	if err := compose.CheckVersion(c.ComposeVersion); err != nil {
		return err
	}
	if _, err := c.WatchDefaults(); err != nil {
		return err
	}
	if err := c.validateAPIAndGate(); err != nil {
		return err
	}
	return c.validateCredentials()
}

// namespacePattern is one registry namespace as berth compares it: the path component before
// the repository's first slash (the distribution spec's path-component grammar).
var namespacePattern = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)

// validateOwner wants OWNER set, without blank entries, and each entry a namespace a push can
// carry, so a typo stops berth at start instead of refusing every push.
func (c Config) validateOwner() error {
	joined := strings.Join(c.Owner, ",")
	if strings.TrimSpace(joined) == "" {
		return errors.New("OWNER is not set; set it to the registry namespace(s) whose pushes berth may deploy, e.g. OWNER=acme (several: OWNER=acme,acme-ci)")
	}
	for _, o := range c.Owner {
		switch {
		case o == "":
			return fmt.Errorf("OWNER=%s has an empty entry; remove the stray comma", joined)
		case strings.Contains(o, "/"):
			return fmt.Errorf("OWNER=%s: %q contains a slash; give the namespace only (the part of a repository before its first /), e.g. OWNER=%s", joined, o, strings.SplitN(o, "/", 2)[0])
		case !namespacePattern.MatchString(o):
			return fmt.Errorf("OWNER=%s: %q is not a registry namespace; namespaces are lowercase letters and digits, with . _ - between them (e.g. OWNER=%s)", joined, o, strings.ToLower(o))
		}
	}
	return nil
}

// validateAPIAndGate checks API_TOKEN's strength and that the GATE_* variables make one gate.
func (c Config) validateAPIAndGate() error {
	for i, s := range c.Webhooks.APIToken {
		if len(s) < minSecretLen {
			return fmt.Errorf("API_TOKEN value %d is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", i+1, len(s), minSecretLen)
		}
	}
	if c.GateTimeout <= 0 {
		return fmt.Errorf("GATE_TIMEOUT=%s must be positive", c.GateTimeout)
	}
	if err := c.Gate().Validate(); err != nil {
		return fmt.Errorf("GATE_*: %w", err)
	}
	return nil
}

// Gate is the default pre-deploy gate the GATE_* variables describe.
func (c Config) Gate() gate.Config {
	return gate.Config{Image: c.GateImage, Command: c.GateCommand, URL: c.GateURL, Timeout: c.GateTimeout, Network: c.GateNetwork}
}

// validateLogging checks LOG_LEVEL and LOG_FORMAT, which every subcommand reads.
func (c Config) validateLogging() error { return checkLogging(c.LogLevel, c.LogFormat) }

// checkLogging checks a LOG_LEVEL and LOG_FORMAT pair.
func checkLogging(level, format string) error {
	if format != "text" && format != "json" {
		return fmt.Errorf("LOG_FORMAT=%q must be text or json", format)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(level)); err != nil {
		return fmt.Errorf("LOG_LEVEL=%q must be debug, info, warn or error", level)
	}
	return nil
}

// validateCredentials wants at least one sender kind enabled and every credential strong enough.
func (c Config) validateCredentials() error {
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

// URLSecretCredentials names the enabled credentials that senders present in the URL, where
// anything on the network path can read them unless berth is reached over HTTPS.
func (c Config) URLSecretCredentials() []string {
	var out []string
	for _, v := range c.EnabledCredentials() {
		if v == "SECRET" || v == "QUAY_SECRET" {
			out = append(out, v)
		}
	}
	return out
}

// EnabledCredentials names the credential variables that are set: the sender kinds berth accepts.
func (c Config) EnabledCredentials() []string {
	var out []string
	for _, v := range credentialVars() {
		if len(*v.dst(&c.Webhooks)) > 0 {
			out = append(out, v.env)
		}
	}
	return out
}
