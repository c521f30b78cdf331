package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	regtypes "github.com/moby/moby/api/types/registry"
)

func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(content string) string {
		p := filepath.Join(dir, "config.json")
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	auth, err := LoadConfig(write(`{"auths": {
		"docker.io": {"auth": "` + b64("hubuser:hubpass") + `"},
		"127.0.0.1:5011": {"auth": "` + b64("u:p:with:colons") + `"},
		"https://registry.example/v2/": {"username": "bot", "password": "tok"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]regtypes.AuthConfig{
		"docker.io":        {Username: "hubuser", Password: "hubpass"},
		"127.0.0.1:5011":   {Username: "u", Password: "p:with:colons"},
		"registry.example": {Username: "bot", Password: "tok"},
	} {
		raw, err := base64.URLEncoding.DecodeString(auth.ForHost(host))
		var got regtypes.AuthConfig
		if err == nil {
			err = json.Unmarshal(raw, &got)
		}
		if err != nil || got.Username != want.Username || got.Password != want.Password {
			t.Errorf("%s: %+v (%v), want %s", host, got, err, want.Username)
		}
	}
	if auth.ForHost("other.example") != "" {
		t.Error("a registry without credentials got some")
	}

	for name, bad := range map[string]string{
		"not json":          `{`,
		"bad auth":          `{"auths": {"r.example": {"auth": "!!"}}}`,
		"credential helper": `{"auths": {"r.example": {}}, "credsStore": "desktop"}`,
	} {
		if _, err := LoadConfig(write(bad)); err == nil || !strings.Contains(err.Error(), "config.json") {
			t.Errorf("%s: error %v, want one naming the file", name, err)
		}
	}
}

func TestLoadCredentials(t *testing.T) {
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("ann:pw1"))
	cfg := `{"auths": {"docker.io": {"auth": "` + auth + `"}, "ghcr.io": {"username": "bob", "password": "pw2"}, "empty.example": {}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(filepath.Join(dir, "config.json"), "ghcr.io=carol:pw3, 127.0.0.1:5001=dan:pw:4")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Hosts(), ","); got != "127.0.0.1:5001,docker.io,ghcr.io" {
		t.Errorf("hosts = %s", got)
	}
	decode := func(ref string) map[string]string {
		raw, _ := base64.URLEncoding.DecodeString(c.Header(ref))
		m := map[string]string{}
		_ = json.Unmarshal(raw, &m)
		return m
	}
	for ref, want := range map[string]string{"acme/web:1": "ann:pw1", "ghcr.io/acme/web:1": "carol:pw3", "127.0.0.1:5001/acme/web": "dan:pw:4"} {
		if m := decode(ref); m["username"]+":"+m["password"] != want {
			t.Errorf("login for %s = %v, want %s", ref, m, want)
		}
	}
	if c.Header("quay.io/acme/web:1") != "" {
		t.Error("a login was sent to a registry berth has none for")
	}
	if strings.Contains(fmt.Sprint(c), "pw") {
		t.Errorf("credentials print their passwords: %v", c)
	}
	if _, err := LoadCredentials("", "ghcr.io"); err == nil {
		t.Error("PULL_CREDENTIALS entry without user:password accepted")
	}
	helperDir := t.TempDir()
	_ = os.WriteFile(filepath.Join(helperDir, "config.json"), []byte(`{"credHelpers": {"ghcr.io": "gh"}}`), 0o600)
	if _, err := LoadCredentials(filepath.Join(helperDir, "config.json"), ""); err == nil || !strings.Contains(err.Error(), `credential helper "gh"`) {
		t.Errorf("credential helper: %v", err)
	}
}
