package deployer

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/registry"
)

func TestLoadRegistryAuth(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "config.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	auth, err := LoadRegistryAuth(write(`{"auths": {
		"docker.io": {"auth": "` + b64("hubuser:hubpass") + `"},
		"127.0.0.1:5011": {"auth": "` + b64("u:p:with:colons") + `"},
		"https://registry.example/v2/": {"username": "bot", "password": "tok"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]registry.AuthConfig{
		"docker.io":        {Username: "hubuser", Password: "hubpass"},
		"127.0.0.1:5011":   {Username: "u", Password: "p:with:colons"},
		"registry.example": {Username: "bot", Password: "tok"},
	} {
		raw, err := base64.URLEncoding.DecodeString(auth(host))
		var got registry.AuthConfig
		if err == nil {
			err = json.Unmarshal(raw, &got)
		}
		if err != nil || got.Username != want.Username || got.Password != want.Password {
			t.Errorf("%s: %+v (%v), want %s", host, got, err, want.Username)
		}
	}
	if auth("other.example") != "" {
		t.Error("a registry without credentials got some")
	}

	for name, bad := range map[string]string{
		"not json":          `{`,
		"bad auth":          `{"auths": {"r.example": {"auth": "!!"}}}`,
		"credential helper": `{"auths": {"r.example": {}}, "credsStore": "desktop"}`,
	} {
		if _, err := LoadRegistryAuth(write(bad)); err == nil || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
}
