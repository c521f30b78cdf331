package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/handler"
)

func TestConfigCredentials(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "ghcr")
	if err := os.WriteFile(file, []byte("ghcr-secret-0123456789\nghcr-older-secret-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const long = "0123456789abcdef0123"
	tests := []struct {
		name   string
		env    map[string]string
		errHas string
		loaded func(handler.Config) handler.Secrets
		want   int
	}{
		{name: "nothing enabled", env: map[string]string{}, errHas: "no webhook sender is enabled; set at least one of SECRET, QUAY_SECRET"},
		{name: "docker hub only", env: map[string]string{"SECRET": long}, loaded: func(c handler.Config) handler.Secrets { return c.DockerHub }, want: 1},
		{name: "rotation", env: map[string]string{"DISTRIBUTION_TOKEN": long + "a, " + long + "b"}, loaded: func(c handler.Config) handler.Secrets { return c.Distribution }, want: 2},
		{name: "file, one per line", env: map[string]string{"GHCR_SECRET_FILE": file}, loaded: func(c handler.Config) handler.Secrets { return c.GHCR }, want: 2},
		{name: "value and file", env: map[string]string{"GHCR_SECRET": long, "GHCR_SECRET_FILE": file}, errHas: "GHCR_SECRET and GHCR_SECRET_FILE are both set"},
		{name: "missing file", env: map[string]string{"GITEA_SECRET_FILE": filepath.Join(dir, "nope")}, errHas: "GITEA_SECRET_FILE"},
		{name: "short", env: map[string]string{"HARBOR_AUTH_HEADER": "Bearer x"}, errHas: "HARBOR_AUTH_HEADER value 1 is too short"},
		{name: "short rotated value", env: map[string]string{"QUAY_SECRET": long + ",short"}, errHas: "QUAY_SECRET value 2 is too short"},
		{name: "standard webhooks", env: map[string]string{"STANDARD_WEBHOOKS_SECRET": "whsec_YmVydGgtZml4dHVyZS1rZXktbm90LWEtc2VjcmV0ISE="},
			loaded: func(c handler.Config) handler.Secrets { return c.StandardWebhooks }, want: 1},
		{name: "standard webhooks without prefix", env: map[string]string{"STANDARD_WEBHOOKS_SECRET": "YmVydGgtZml4dHVyZS1rZXktbm90LWEtc2VjcmV0ISE="}, errHas: "STANDARD_WEBHOOKS_SECRET value 1 is not whsec_"},
		{name: "standard webhooks short key", env: map[string]string{"STANDARD_WEBHOOKS_SECRET": "whsec_c2hvcnQ="}, errHas: "STANDARD_WEBHOOKS_SECRET value 1 is too short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"OWNER": "acme"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := Load(func(k string) string { return env[k] })
			if tc.errHas != "" {
				if err == nil || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("error %v, want one containing %q", err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n := len(tc.loaded(c.Webhooks)); n != tc.want {
				t.Errorf("%d credentials loaded, want %d", n, tc.want)
			}
		})
	}
	spec := Config{ProjectDir: "."}.Projects([]string{"GHCR_SECRET=x", "HARBOR_AUTH_HEADER_FILE=y", "KEEP=z"})[0]
	if len(spec.Environ) != 1 || spec.Environ[0] != "KEEP=z" {
		t.Errorf("credential variables leak into compose interpolation: %v", spec.Environ)
	}
}

// TestProjectDirList: PROJECT_DIR takes several directories, HOST_PROJECT_DIR pairs with them,
// and settings that cannot apply to several projects are refused with the fix.
func TestProjectDirList(t *testing.T) {
	c := Config{ProjectDir: "/srv/a, /srv/b", HostProjectDir: "/host/a,/host/b", ComposeFile: "compose.yaml:prod.yaml"}
	specs := c.Projects([]string{"X=1", "SECRET=s", "HOST_PROJECT_DIR=/host/a"})
	if len(specs) != 2 || specs[1].Dir != "/srv/b" || specs[1].HostDir != "/host/b" ||
		!slices.Equal(specs[1].Files, []string{"/srv/b/compose.yaml", "/srv/b/prod.yaml"}) || !slices.Equal(specs[0].Environ, []string{"X=1"}) {
		t.Errorf("projects = %+v", specs)
	}
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{ProjectDir: "/srv/a,/srv/b", ProjectName: "x"}, "COMPOSE_PROJECT_NAME"},
		{Config{ProjectDir: "/srv/a,/srv/b", HostProjectDir: "/host/a"}, "HOST_PROJECT_DIR lists 1 paths for 2"},
		{Config{ProjectDir: " , "}, "PROJECT_DIR is empty"},
		{Config{ProjectName: "x"}, "use PROJECTS=name to limit discovery"},
		{Config{HostProjectDir: "/host/a"}, "HOST_PROJECT_DIR needs PROJECT_DIR"},
		{Config{ProjectDir: "/srv/a", Backend: "kubernetes"}, `BACKEND="kubernetes" is not auto, compose or swarm`},
		{Config{ProjectDir: "/srv/a", SwarmTimeout: -time.Second}, "SWARM_TIMEOUT=-1s must be positive"},
		{Config{ProjectDir: "/srv/a", DistributionHost: "https://registry.example.com"}, "DISTRIBUTION_HOST"},
		{Config{ProjectDir: "/srv/a", DistributionHost: "registry.example.com/acme"}, "DISTRIBUTION_HOST"},
		{Config{ProjectDir: "/srv/a", DistributionHost: "acme"}, "DISTRIBUTION_HOST"},
	} {
		tc.c.Owner, tc.c.Parallel, tc.c.LogLevel, tc.c.LogFormat = []string{"acme"}, 1, "info", "text"
		if err := tc.c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate(%+v) = %v, want an error about %s", tc.c, err, tc.want)
		}
	}
}

// TestDiscoveryIsTheDefault: berth discovers only when neither PROJECT_DIR nor COMPOSE_FILE
// says where the project is; COMPOSE_FILE alone means the current directory, as in the CLI.
func TestDiscoveryIsTheDefault(t *testing.T) {
	if !(Config{}).Discover() {
		t.Error("no PROJECT_DIR and no COMPOSE_FILE must discover")
	}
	if c := (Config{ComposeFile: "compose.yaml:prod.yaml"}); c.Discover() || len(c.Projects(nil)) != 1 || c.Projects(nil)[0].Dir != "." {
		t.Errorf("COMPOSE_FILE alone: discover=%v projects=%+v, want the current directory", c.Discover(), c.Projects(nil))
	}
	if c := (Config{ProjectDir: "/srv/a"}); c.Discover() {
		t.Error("PROJECT_DIR must not discover")
	}
	f := Config{AllowProjects: []string{"a", " "}, SkipProjects: []string{"b"}}.Filter()
	if len(f.Allow) != 1 || f.Allow[0] != "a" || len(f.Deny) != 1 {
		t.Errorf("filter = %+v", f)
	}
}

func TestExposureConfig(t *testing.T) {
	valid := func() Exposure {
		return Exposure{AuthFailureBurst: 10, AuthFailureRefill: 30 * time.Second, MaxConcurrentRequests: 64,
			RequestBodyTimeout: 5 * time.Second, TrustedProxyHeader: "X-Forwarded-For"}
	}
	for _, tc := range []struct {
		name string
		edit func(*Exposure)
		want string // "" for valid
	}{
		{"plain", func(*Exposure) {}, ""},
		{"files", func(e *Exposure) { e.TLSCertFile, e.TLSKeyFile = "c", "k" }, ""},
		{"acme", func(e *Exposure) {
			e.ACMEDomains = []string{"berth.example.com"}
			e.ACMEDirectoryURL = "https://ca.example/dir"
		}, ""},
		{"cert without key", func(e *Exposure) { e.TLSCertFile = "c" }, "TLS_CERT_FILE and TLS_KEY_FILE go together"},
		{"both sources", func(e *Exposure) { e.TLSCertFile, e.TLSKeyFile, e.ACMEDomains = "c", "k", []string{"a.example"} }, "ACME_DOMAINS and TLS_CERT_FILE are both set"},
		{"email without domains", func(e *Exposure) { e.ACMEEmail = "ops@example.com" }, "need ACME_DOMAINS"},
		{"HTTP_ADDR without TLS", func(e *Exposure) { e.HTTPAddr = ":80" }, "unset HTTP_ADDR"},
		{"url domain", func(e *Exposure) { e.ACMEDomains = []string{"https://berth.example.com"} }, "ACME_DOMAINS: \"https://berth.example.com\" is not a bare domain"},
		{"dotless domain", func(e *Exposure) { e.ACMEDomains = []string{"localhost"} }, "has no dot"},
		{"http directory", func(e *Exposure) { e.ACMEDomains = []string{"a.example"}; e.ACMEDirectoryURL = "http://ca/dir" }, "ACME_DIRECTORY_URL"},
		{"bad proxies", func(e *Exposure) { e.TrustedProxies = "10.0.0.0/40" }, "TRUSTED_PROXIES"},
		{"zero burst", func(e *Exposure) { e.AuthFailureBurst = 0 }, "AUTH_FAILURE_BURST=0"},
		{"zero refill", func(e *Exposure) { e.AuthFailureRefill = 0 }, "AUTH_FAILURE_REFILL"},
		{"zero concurrency", func(e *Exposure) { e.MaxConcurrentRequests = 0 }, "MAX_CONCURRENT_REQUESTS=0"},
		{"zero body timeout", func(e *Exposure) { e.RequestBodyTimeout = 0 }, "REQUEST_BODY_TIMEOUT=0s"},
		{"Forwarded header", func(e *Exposure) { e.TrustedProxyHeader = "Forwarded" }, ""},
		{"bad proxy header", func(e *Exposure) { e.TrustedProxyHeader = "X-Forwarded-For: 1.2.3.4" }, "TRUSTED_PROXY_HEADER"},
	} {
		e := valid()
		tc.edit(&e)
		err := e.Validate("/var/lib/berth")
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	acme := valid()
	acme.ACMEDomains = []string{"a.example"}
	if err := acme.Validate(""); err == nil || !strings.Contains(err.Error(), "ACME_DOMAINS needs STATE_DIR") {
		t.Errorf("ACME without STATE_DIR: %v", err)
	}
	if acme.PlainHTTPAddr() != ":80" {
		t.Errorf("ACME's HTTP listener defaults to %q, want :80", acme.PlainHTTPAddr())
	}
	acme.HTTPAddr = "off"
	if acme.PlainHTTPAddr() != "" {
		t.Error("HTTP_ADDR=off still listens")
	}
}

// TestStartupValidation: each misconfiguration a first run meets stops berth at start with one
// line naming the fix, and the valid forms load.
func TestStartupValidation(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	if err := os.WriteFile(file, []byte("services: {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string // "" loads
	}{
		{map[string]string{}, "OWNER is not set; set it to the registry namespace(s)"},
		{map[string]string{"OWNER": ""}, "OWNER is not set"},
		{map[string]string{"OWNER": " , "}, "OWNER=, has an empty entry"},
		{map[string]string{"OWNER": "acme,"}, "OWNER=acme, has an empty entry; remove the stray comma"},
		{map[string]string{"OWNER": "acme/web"}, `"acme/web" contains a slash; give the namespace only`},
		{map[string]string{"OWNER": "Acme"}, `"Acme" is not a registry namespace; namespaces are lowercase letters and digits, with . _ - between them (e.g. OWNER=acme)`},
		{map[string]string{"OWNER": "acme-"}, "is not a registry namespace"},
		{map[string]string{"OWNER": "acme", "PROJECT_DIR": filepath.Join(dir, "nonexistent")}, "does not exist as berth sees it; mount the project directory"},
		{map[string]string{"OWNER": "acme", "PROJECT_DIR": file}, "is a file; set it to the directory"},
		{map[string]string{"OWNER": "acme, acme-ci,library,my_org.x", "PROJECT_DIR": dir}, ""},
		{map[string]string{"OWNER": "acme"}, ""},
	} {
		tc.env["SECRET"] = "0123456789abcdef0123"
		c, err := Load(func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want it to load", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%v: error %v, want one line containing %q", tc.env, err, tc.want)
		case tc.want == "" && slices.Contains(c.Owner, " acme-ci"):
			t.Errorf("OWNER entries kept their spaces: %q", c.Owner)
		}
	}
}

// TestStateDirDefault: STATE_DIR as set; "none" keeps everything in memory; unset, the first
// writable default, found without creating anything; nothing writable leaves memory only and
// says what was tried.
func TestStateDirDefault(t *testing.T) {
	tmp := t.TempDir()
	file := filepath.Join(tmp, "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		env       map[string]string
		want      string
		defaulted bool
	}{
		{"set", map[string]string{"STATE_DIR": "/srv/berth"}, "/srv/berth", false},
		{"none", map[string]string{"STATE_DIR": "none"}, "", false},
		{"xdg", map[string]string{"XDG_STATE_HOME": filepath.Join(tmp, "state")}, filepath.Join(tmp, "state", "berth"), true},
		{"nothing writable", map[string]string{"XDG_STATE_HOME": filepath.Join(file, "state")}, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := map[string]string{"OWNER": "acme", "SECRET": "0123456789abcdef0123"}
			for k, v := range tc.env {
				env[k] = v
			}
			c, err := Load(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			if c.StateDir != tc.want || c.StateDirDefaulted != tc.defaulted {
				t.Errorf("STATE_DIR %q (defaulted %v), want %q (%v)", c.StateDir, c.StateDirDefaulted, tc.want, tc.defaulted)
			}
			if tc.name == "nothing writable" && len(c.StateDirTried) == 0 {
				t.Error("nothing writable, and no candidate named")
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "state")); !os.IsNotExist(err) {
		t.Errorf("loading the configuration created the default STATE_DIR (%v)", err)
	}
}
