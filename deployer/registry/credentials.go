package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/google/go-containerregistry/pkg/authn"
	regtypes "github.com/moby/moby/api/types/registry"
)

// Credentials are registry logins by registry host (docker.io, ghcr.io, 127.0.0.1:5001): sent
// with pulls (Header), forwarded with swarm updates (ForHost) and used by inspection
// (Keychain). The zero value has none.
type Credentials struct {
	byHost map[string]regtypes.AuthConfig
}

// String names the hosts only; passwords never print.
func (c Credentials) String() string { return "logins for " + strings.Join(c.Hosts(), ",") }

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue names the hosts only; passwords never reach a log.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(strings.Join(c.Hosts(), ",")) }

// Hosts lists the registry hosts berth has credentials for.
func (c Credentials) Hosts() []string { return slices.Sorted(maps.Keys(c.byHost)) }

// LoadCredentials reads the static logins ("auths") of the docker config.json at path (the file
// `docker login` writes; a missing file is no logins) and adds env, a comma-separated list of
// host=user:password that wins over the file for its hosts. Credential helpers cannot run in
// berth's image, so a host whose login lives in one is an error naming it.
func LoadCredentials(path, env string) (Credentials, error) {
	c := Credentials{byHost: map[string]regtypes.AuthConfig{}}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return c, fmt.Errorf("registry logins: %w", err)
		}
		if err == nil {
			cfg, err := parseConfig(path, b)
			if err != nil {
				return c, err
			}
			maps.Copy(c.byHost, cfg.logins)
			for key, helper := range cfg.CredHelpers {
				if _, ok := c.byHost[keyHost(key)]; !ok {
					return c, fmt.Errorf("%s keeps the login of %s in credential helper %q, which berth cannot run; write the login into auths "+
						"(docker login with no credsStore) or set PULL_CREDENTIALS", path, key, helper)
				}
			}
		}
	}
	for _, entry := range strings.Split(env, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		host, login, ok := strings.Cut(entry, "=")
		user, pass, ok2 := strings.Cut(login, ":")
		if !ok || !ok2 || host == "" || user == "" {
			return c, fmt.Errorf("PULL_CREDENTIALS entry %d is not host=user:password", len(c.byHost)+1)
		}
		c.byHost[keyHost(host)] = regtypes.AuthConfig{Username: user, Password: pass, ServerAddress: host}
	}
	return c, nil
}

// LoadConfig reads the static logins of a docker config.json given on purpose
// (REGISTRY_AUTH_CONFIG): unlike LoadCredentials, a missing file is an error, and so is any
// entry whose login a credential helper keeps, since berth's image has none to run.
func LoadConfig(path string) (Credentials, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Credentials{}, err
	}
	cfg, err := parseConfig(path, b)
	if err != nil {
		return Credentials{}, err
	}
	for _, key := range cfg.loginless {
		if cfg.CredsStore != "" || cfg.CredHelpers[key] != "" {
			return Credentials{}, fmt.Errorf("%s keeps the credentials of %s in a credential helper, which berth cannot run; "+
				"write a config.json with the credentials inline (docker login with an empty credsStore)", path, key)
		}
	}
	return Credentials{byHost: cfg.logins}, nil
}

// config is what berth reads of a docker config.json.
type config struct {
	Auths       map[string]regtypes.AuthConfig `json:"auths"`
	CredsStore  string                         `json:"credsStore"`
	CredHelpers map[string]string              `json:"credHelpers"`

	logins    map[string]regtypes.AuthConfig // the auths that hold a login, by registry host
	loginless []string                       // the auths keys that hold none (a helper may keep it)
}

// parseConfig parses the config.json read from path and decodes its auths' logins.
func parseConfig(path string, b []byte) (config, error) {
	var cfg config
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("%s is not a docker config.json: %w", path, err)
	}
	cfg.logins = map[string]regtypes.AuthConfig{}
	for key, a := range cfg.Auths {
		if a.Auth != "" && a.Username == "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return cfg, fmt.Errorf("%s: the auth of %s is not base64 of user:password", path, key)
			}
			a.Username, a.Password = user, pass
		}
		if a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
			cfg.loginless = append(cfg.loginless, key)
			continue
		}
		a.Auth, a.ServerAddress = "", key
		cfg.logins[keyHost(key)] = a
	}
	return cfg, nil
}

// ForHost is the X-Registry-Auth value for a registry host, "" when berth has no login for it:
// what a pull sends and a swarm service update forwards to the nodes.
func (c Credentials) ForHost(host string) string {
	a, ok := c.byHost[host]
	if !ok {
		return ""
	}
	j, err := json.Marshal(a)
	if err != nil {
		return ""
	}
	return base64.URLEncoding.EncodeToString(j)
}

// Header is the X-Registry-Auth value for pulling ref, "" when berth has no login for its host.
func (c Credentials) Header(ref string) string { return c.ForHost(hostOf(ref)) }

// Explain adds to a failed pull what berth knows about its login to the image's registry,
// when the registry refused it for want of one.
func (c Credentials) Explain(ref string, err error) error {
	msg := strings.ToLower(err.Error())
	if !strings.Contains(msg, "unauthorized") && !strings.Contains(msg, "authentication required") &&
		!strings.Contains(msg, "no basic auth credentials") && !strings.Contains(msg, "access denied") {
		return err
	}
	host := hostOf(ref)
	if _, ok := c.byHost[host]; ok {
		return fault.Errorf(fault.Forbidden, "%w; registry %s refused berth's login: check the credentials for it in DOCKER_CONFIG's config.json or PULL_CREDENTIALS", err, host)
	}
	return fault.Errorf(fault.Forbidden, "%w; berth has no login for registry %s: add one to DOCKER_CONFIG's config.json or set PULL_CREDENTIALS=%s=user:password", err, host, host)
}

// Keychain is these logins as image inspection authenticates with them. It reads no file and
// no environment of its own: berth's configuration already loaded every login it may use.
func (c Credentials) Keychain() authn.Keychain { return keychain{c} }

// keychain resolves a registry to its login in Credentials, anonymous when there is none.
type keychain struct{ c Credentials }

func (k keychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	a, ok := k.c.byHost[keyHost(r.RegistryStr())]
	if !ok {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password,
		IdentityToken: a.IdentityToken, RegistryToken: a.RegistryToken}), nil
}
