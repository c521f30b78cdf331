package deployer

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
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
)

// Credentials are registry logins by registry host (docker.io, ghcr.io, 127.0.0.1:5001),
// sent with the pulls of images from that host. The zero value has none.
type Credentials struct {
	byHost map[string]registry.AuthConfig
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
	c := Credentials{byHost: map[string]registry.AuthConfig{}}
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil && !os.IsNotExist(err) {
			return c, fmt.Errorf("registry logins: %w", err)
		}
		if err == nil {
			if err := c.addConfig(path, b); err != nil {
				return c, err
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
		c.byHost[registryHost(host)] = registry.AuthConfig{Username: user, Password: pass, ServerAddress: host}
	}
	return c, nil
}

func (c Credentials) addConfig(path string, b []byte) error {
	var cfg struct {
		Auths       map[string]registry.AuthConfig `json:"auths"`
		CredsStore  string                         `json:"credsStore"`
		CredHelpers map[string]string              `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return fmt.Errorf("%s is not a docker config.json: %w", path, err)
	}
	for key, a := range cfg.Auths {
		if a.Auth != "" && a.Username == "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return fmt.Errorf("%s: the auth of %s is not base64 of user:password", path, key)
			}
			a.Username, a.Password = user, pass
		}
		a.Auth = ""
		if a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
			continue
		}
		a.ServerAddress = key
		c.byHost[registryHost(key)] = a
	}
	for key, helper := range cfg.CredHelpers {
		if _, ok := c.byHost[registryHost(key)]; !ok {
			return fmt.Errorf("%s keeps the login of %s in credential helper %q, which berth cannot run; write the login into auths "+
				"(docker login with no credsStore) or set PULL_CREDENTIALS", path, key, helper)
		}
	}
	return nil
}

// ForHost is the X-Registry-Auth value for a registry host, "" when berth has no login for it;
// it is a RegistryAuth, so the swarm backend forwards the same logins.
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

// header is the X-Registry-Auth value for pulling ref, "" when berth has no login for its host.
func (c Credentials) header(ref string) string { return c.ForHost(hostOf(ref)) }

// explain adds to a failed pull what berth knows about its login to the image's registry,
// when the registry refused it for want of one.
func (c Credentials) explain(ref string, err error) error {
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

// hostOf is the registry host of an image reference; docker.io for Docker Hub images.
func hostOf(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Domain(named)
}
