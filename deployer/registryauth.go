package deployer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
)

// LoadRegistryAuth reads the static credentials ("auths") of a docker config.json, the file
// `docker login` writes, and returns them as a RegistryAuth. Credential helpers are not run:
// berth's image has none, so their entries are reported instead of silently ignored.
func LoadRegistryAuth(path string) (RegistryAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var cfg struct {
		Auths       map[string]registry.AuthConfig `json:"auths"`
		CredsStore  string                         `json:"credsStore"`
		CredHelpers map[string]string              `json:"credHelpers"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return nil, fmt.Errorf("%s is not a docker config.json: %w", path, err)
	}
	encoded := map[string]string{}
	for key, a := range cfg.Auths {
		if a.Auth != "" && a.Username == "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("%s: the auth of %s is not base64 of user:password", path, key)
			}
			a.Username, a.Password = user, pass
		}
		if a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
			if cfg.CredsStore != "" || cfg.CredHelpers[key] != "" {
				return nil, fmt.Errorf("%s keeps the credentials of %s in a credential helper, which berth cannot run; "+
					"write a config.json with the credentials inline (docker login with an empty credsStore)", path, key)
			}
			continue
		}
		host := registryHost(key)
		a.Auth, a.ServerAddress = "", key
		j, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		encoded[host] = base64.URLEncoding.EncodeToString(j)
	}
	return func(host string) string { return encoded[host] }, nil
}

// registryHost is the registry host a config.json key names: keys may be URLs, and Docker
// Hub's is its legacy index URL, which reference normalization maps to docker.io as for images.
func registryHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	named, err := reference.ParseNormalizedNamed(h + "/x")
	if err != nil {
		return h
	}
	return reference.Domain(named)
}
