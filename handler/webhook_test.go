package handler

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
)

// The credentials the fixtures were signed with (see testdata/*.headers.txt).
const (
	fixtureSecret = "test-secret"
	fixtureKey    = "whsec_YmVydGgtZml4dHVyZS1rZXktbm90LWEtc2VjcmV0ISE="
	fixtureOldKey = "whsec_YmVydGgtb2xkLXJvdGF0ZWQta2V5LW5vdC1zZWNyZXQ="
	dockerHubURL  = "dockerhub-url-secret"
	quayURL       = "quay-url-secret"
	digestAMD64   = "sha256:deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
	digestIndex   = "sha256:feedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedfacefeedface"
)

// fixtureTime is the push instant every fixture reports (2026-11-20T14:03:27Z).
var fixtureTime = time.Unix(1795183407, 0)

// recordingDeployer stands in for the deployer: what is under test here is what the handler
// asks for, not a deploy. It answers with one service per request unless told to fail.
type recordingDeployer struct {
	mu   sync.Mutex
	reqs []deployer.Request
	err  error
}

func (d *recordingDeployer) Deploy(_ context.Context, req deployer.Request) (deployer.Ticket, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.err != nil {
		return deployer.Ticket{}, d.err
	}
	d.reqs = append(d.reqs, req)
	return deployer.Ticket{ID: "t", Image: req.Repository + ":" + req.Tag, Services: []string{"p/web"}}, nil
}

func (d *recordingDeployer) requests() []deployer.Request {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]deployer.Request(nil), d.reqs...)
}

func fullConfig() Config {
	return Config{
		DockerHub:        Secrets{dockerHubURL},
		Quay:             Secrets{quayURL},
		Distribution:     Secrets{fixtureSecret},
		GHCR:             Secrets{fixtureSecret},
		Harbor:           Secrets{"Bearer " + fixtureSecret},
		Gitea:            Secrets{fixtureSecret},
		StandardWebhooks: Secrets{fixtureKey},
		Now:              func() time.Time { return fixtureTime.Add(30 * time.Second) },
	}
}

// fixture reads a body byte for byte: the signatures cover these exact bytes.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fixtureHeaders reads the header block of a *.headers.txt file, skipping the notes and the
// request line.
func fixtureHeaders(t testing.TB, name string) http.Header {
	t.Helper()
	h := http.Header{}
	sc := bufio.NewScanner(strings.NewReader(string(fixture(t, name))))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "POST ") {
			continue
		}
		k, v, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("%s: bad header line %q", name, line)
		}
		if k != "Content-Length" && k != "Host" {
			h.Add(k, v)
		}
	}
	return h
}

type call struct {
	query  string // e.g. "?secret=…"
	header http.Header
	body   []byte
}

func send(t testing.TB, h http.Handler, c call) (int, map[string]any) {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/webhook"+c.query, strings.NewReader(string(c.body)))
	for k, vs := range c.header {
		for _, v := range vs {
			r.Header.Add(k, v)
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var out map[string]any
	body, _ := io.ReadAll(w.Result().Body)
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("answer %d is not JSON: %q", w.Code, body)
	}
	return w.Code, out
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == "" {
			h.Del(kv[i])
		} else {
			h.Set(kv[i], kv[i+1])
		}
	}
	return h
}

func TestWebhookSources(t *testing.T) {
	dhBody := fixture(t, "dockerhub-push.json")
	distH := fixtureHeaders(t, "distribution-push.headers.txt")
	ghH := fixtureHeaders(t, "ghcr-package-published.headers.txt")
	giteaH := fixtureHeaders(t, "gitea-package-created.headers.txt")
	harborH := fixtureHeaders(t, "harbor-push.headers.txt")
	quayH := fixtureHeaders(t, "quay-push.headers.txt")
	swH := fixtureHeaders(t, "standard-webhooks.headers.txt")
	giteaBody := fixture(t, "gitea-package-created.json")
	giteaSig := giteaH.Get("X-Gitea-Signature")
	forgejoH := with(giteaH, "X-Gitea-Signature", "", "X-Gitea-Event", "", "X-Gitea-Delivery", "",
		"X-Forgejo-Event", "package", "X-Forgejo-Signature", giteaSig, "X-Forgejo-Delivery", "f-1")

	type want struct{ repo, tag, digest string }
	tests := []struct {
		name   string
		call   call
		cfg    func(*Config)
		status int
		want   []want
		errHas string
	}{
		{name: "dockerhub", call: call{"?secret=" + dockerHubURL, nil, dhBody}, status: 202,
			want: []want{{"acme/web", "1.4.2", ""}}},
		{name: "dockerhub without dockerfile", call: call{"?secret=" + dockerHubURL, nil, fixture(t, "dockerhub-push-no-dockerfile.json")}, status: 202,
			want: []want{{"acme/web", "1.4.2", ""}}},
		{name: "dockerhub rotated secret", call: call{"?secret=" + dockerHubURL, nil, dhBody}, status: 202,
			cfg:  func(c *Config) { c.DockerHub = Secrets{"new-secret-0123456789", dockerHubURL} },
			want: []want{{"acme/web", "1.4.2", ""}}},
		{name: "dockerhub wrong secret", call: call{"?secret=nope", nil, dhBody}, status: 401},
		{name: "dockerhub no secret", call: call{"", nil, dhBody}, status: 401},

		{name: "distribution v2", call: call{"", distH, fixture(t, "distribution-push.json")}, status: 202,
			want: []want{{"registry.acme.example:5000/acme/web", "1.4.2", digestAMD64}}},
		{name: "distribution with DISTRIBUTION_HOST", call: call{"", distH, fixture(t, "distribution-push.json")}, status: 202,
			cfg:  func(c *Config) { c.DistributionHost = "registry.example.com" },
			want: []want{{"registry.example.com/acme/web", "1.4.2", digestAMD64}}},
		{name: "distribution v1 media type", call: call{"", with(distH, "Content-Type", distributionV1), fixture(t, "distribution-push.json")}, status: 202,
			want: []want{{"registry.acme.example:5000/acme/web", "1.4.2", digestAMD64}}},
		{name: "distribution registry v3 single event", call: call{"", distH, fixture(t, "distribution-manifest-push-v3.json")}, status: 202,
			want: []want{{"registry.acme.example:5000/acme/web", "1.4.2", digestAMD64}}},
		{name: "distribution multi-arch deploys the tagged index once", call: call{"", distH, fixture(t, "distribution-push-multiarch.json")}, status: 202,
			want: []want{{"registry.acme.example:5000/acme/web", "1.4.2", digestIndex}}},
		{name: "distribution wrong token", call: call{"", with(distH, "Authorization", "Bearer nope"), fixture(t, "distribution-push.json")}, status: 401},
		{name: "distribution token without Bearer", call: call{"", with(distH, "Authorization", fixtureSecret), fixture(t, "distribution-push.json")}, status: 401},
		{name: "distribution no token", call: call{"", with(distH, "Authorization", ""), fixture(t, "distribution-push.json")}, status: 401},

		{name: "ghcr package", call: call{"", ghH, fixture(t, "ghcr-package-published.json")}, status: 202,
			want: []want{{"ghcr.io/acme/web", "1.4.2", digestAMD64}}},
		{name: "ghcr registry_package", call: call{"", fixtureHeaders(t, "ghcr-registry-package-published.headers.txt"), fixture(t, "ghcr-registry-package-published.json")}, status: 202,
			want: []want{{"ghcr.io/acme/web", "1.4.2", digestAMD64}}},
		{name: "ghcr untagged child is acknowledged", call: call{"", fixtureHeaders(t, "ghcr-package-published-untagged.headers.txt"), fixture(t, "ghcr-package-published-untagged.json")}, status: 200},
		{name: "ghcr bad signature", call: call{"", with(ghH, "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64)), fixture(t, "ghcr-package-published.json")}, status: 401},
		{name: "ghcr signature of another body", call: call{"", ghH, fixture(t, "ghcr-registry-package-published.json")}, status: 401},
		{name: "ghcr sha1 signature only", call: call{"", with(ghH, "X-Hub-Signature-256", ""), fixture(t, "ghcr-package-published.json")}, status: 401},

		{name: "gitea", call: call{"", giteaH, giteaBody}, status: 202,
			want: []want{{"git.acme.example/acme/web", "1.4.2", ""}}},
		{name: "forgejo", call: call{"", forgejoH, giteaBody}, status: 202,
			want: []want{{"git.acme.example/acme/web", "1.4.2", ""}}},
		{name: "gitea bad signature", call: call{"", with(giteaH, "X-Gitea-Signature", strings.Repeat("0", 64)), giteaBody}, status: 401},
		{name: "gitea prefixed signature is not Gitea's", call: call{"", with(giteaH, "X-Gitea-Signature", "sha256="+giteaSig), giteaBody}, status: 401},

		{name: "harbor default", call: call{"", harborH, fixture(t, "harbor-push.json")}, status: 202,
			want: []want{{"harbor.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "harbor cloudevents", call: call{"", with(harborH, "Content-Type", "application/cloudevents+json"), fixture(t, "harbor-push-cloudevents.json")}, status: 202,
			want: []want{{"harbor.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "harbor cloudevents sent as application/json", call: call{"", harborH, fixture(t, "harbor-push-cloudevents.json")}, status: 202,
			want: []want{{"harbor.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "harbor wrong auth", call: call{"", with(harborH, "Authorization", "Bearer nope"), fixture(t, "harbor-push.json")}, status: 401},

		{name: "quay", call: call{"?secret=" + quayURL, quayH, fixture(t, "quay-push.json")}, status: 202,
			want: []want{{"quay.io/acme/web", "1.4.2", ""}}},
		{name: "quay with docker hub's secret", call: call{"?secret=" + dockerHubURL, quayH, fixture(t, "quay-push.json")}, status: 401},

		{name: "standard webhooks", call: call{"", swH, fixture(t, "standard-webhooks.json")}, status: 202,
			want: []want{{"registry.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "standard webhooks rotation", call: call{"", with(swH, "Webhook-Signature", "v1,PRmATCZndZGGuFEYncMvUzaYk1YDUl2mJNGHcD5EcYg= v1,IqwlHEn3yV1Klo/y4sb+Lh0QZ2CHQpHG7SD1Ofe4hAQ="), fixture(t, "standard-webhooks.json")}, status: 202,
			want: []want{{"registry.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "standard webhooks old key still configured", call: call{"", with(swH, "Webhook-Signature", "v1,PRmATCZndZGGuFEYncMvUzaYk1YDUl2mJNGHcD5EcYg="), fixture(t, "standard-webhooks.json")}, status: 202,
			cfg:  func(c *Config) { c.StandardWebhooks = Secrets{fixtureKey, fixtureOldKey} },
			want: []want{{"registry.acme.example/acme/web", "1.4.2", digestAMD64}}},
		{name: "standard webhooks rotated-out key", call: call{"", with(swH, "Webhook-Signature", "v1,PRmATCZndZGGuFEYncMvUzaYk1YDUl2mJNGHcD5EcYg="), fixture(t, "standard-webhooks.json")}, status: 401},
		{name: "standard webhooks other id", call: call{"", with(swH, "Webhook-Id", "msg_other"), fixture(t, "standard-webhooks.json")}, status: 401},
		{name: "standard webhooks other timestamp", call: call{"", with(swH, "Webhook-Timestamp", "1795183408"), fixture(t, "standard-webhooks.json")}, status: 401},
		{name: "standard webhooks stale", call: call{"", swH, fixture(t, "standard-webhooks.json")}, status: 401, errHas: "5m0s",
			cfg: func(c *Config) { c.Now = func() time.Time { return fixtureTime.Add(5*time.Minute + time.Second) } }},
		{name: "standard webhooks from the future", call: call{"", swH, fixture(t, "standard-webhooks.json")}, status: 401, errHas: "check both clocks",
			cfg: func(c *Config) { c.Now = func() time.Time { return fixtureTime.Add(-6 * time.Minute) } }},
		{name: "standard webhooks at the window's edge", call: call{"", swH, fixture(t, "standard-webhooks.json")}, status: 202,
			cfg:  func(c *Config) { c.Now = func() time.Time { return fixtureTime.Add(5 * time.Minute) } },
			want: []want{{"registry.acme.example/acme/web", "1.4.2", digestAMD64}}},

		// Detection picks the parser, never the credential.
		{name: "docker hub body with GitHub headers", call: call{"?secret=" + dockerHubURL, with(http.Header{}, "X-GitHub-Event", "package", "X-Hub-Signature-256", "sha256="+strings.Repeat("0", 64)), dhBody}, status: 401},
		{name: "docker hub body with Gitea headers", call: call{"?secret=" + dockerHubURL, with(http.Header{}, "X-Gitea-Event", "package"), dhBody}, status: 401},
		{name: "docker hub body as a distribution envelope", call: call{"?secret=" + dockerHubURL, with(http.Header{}, "Content-Type", distributionV2), dhBody}, status: 401},
		{name: "docker hub body with webhook-id", call: call{"?secret=" + dockerHubURL, with(http.Header{}, "Webhook-Id", "x"), dhBody}, status: 401},
		{name: "docker hub body with the GHCR secret in the URL", call: call{"?secret=" + fixtureSecret, nil, dhBody}, status: 401},
		{name: "Gitea delivery is not taken for GitHub's", call: call{"", with(giteaH, "X-Gitea-Signature", "", "X-Gogs-Signature", ""), giteaBody}, status: 401,
			cfg: func(c *Config) { c.Gitea = Secrets{"another-secret-entirely"} }},
		{name: "distribution body claiming Docker Hub's shape needs the token", call: call{"?secret=" + dockerHubURL, nil, fixture(t, "distribution-push.json")}, status: 401},

		// Disabled kinds and unknown senders.
		{name: "ghcr disabled", call: call{"", ghH, fixture(t, "ghcr-package-published.json")}, status: 400, errHas: "GHCR_SECRET",
			cfg: func(c *Config) { c.GHCR = nil }},
		{name: "quay disabled", call: call{"?secret=" + quayURL, quayH, fixture(t, "quay-push.json")}, status: 400, errHas: "QUAY_SECRET",
			cfg: func(c *Config) { c.Quay = nil }},
		{name: "dockerhub disabled", call: call{"?secret=" + dockerHubURL, nil, dhBody}, status: 400, errHas: "SECRET",
			cfg: func(c *Config) { c.DockerHub = nil }},
		{name: "distribution disabled", call: call{"", distH, fixture(t, "distribution-push.json")}, status: 400, errHas: "DISTRIBUTION_TOKEN",
			cfg: func(c *Config) { c.Distribution = nil }},
		{name: "harbor disabled", call: call{"", harborH, fixture(t, "harbor-push.json")}, status: 400, errHas: "HARBOR_AUTH_HEADER",
			cfg: func(c *Config) { c.Harbor = nil }},
		{name: "gitea disabled", call: call{"", giteaH, giteaBody}, status: 400, errHas: "GITEA_SECRET",
			cfg: func(c *Config) { c.Gitea = nil }},
		{name: "standard webhooks disabled", call: call{"", swH, fixture(t, "standard-webhooks.json")}, status: 400, errHas: "STANDARD_WEBHOOKS_SECRET",
			cfg: func(c *Config) { c.StandardWebhooks = nil }},
		{name: "unknown JSON", call: call{"?secret=" + dockerHubURL, nil, []byte(`{"hello":"world"}`)}, status: 400, errHas: "berth expects"},
		{name: "not JSON", call: call{"", nil, []byte("push!")}, status: 400, errHas: "berth expects"},
		{name: "empty", call: call{"", nil, nil}, status: 400, errHas: "berth expects"},
		{name: "github ping", call: call{"", with(ghH, "X-GitHub-Event", "ping", "X-Hub-Signature-256", "sha256="+hmacHex(fixtureSecret, []byte(`{"zen":"x"}`))), []byte(`{"zen":"x"}`)}, status: 200},
		{name: "github push event", call: call{"", with(ghH, "X-GitHub-Event", "push", "X-Hub-Signature-256", "sha256="+hmacHex(fixtureSecret, []byte(`{}`))), []byte(`{}`)}, status: 400, errHas: "Packages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fullConfig()
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			d := &recordingDeployer{}
			status, out := send(t, NewServer(cfg, d, slog.New(slog.DiscardHandler)), tc.call)
			if status != tc.status {
				t.Fatalf("status %d %v, want %d", status, out, tc.status)
			}
			if tc.errHas != "" && !strings.Contains(out["error"].(string), tc.errHas) {
				t.Errorf("error %q does not mention %q", out["error"], tc.errHas)
			}
			got := d.requests()
			if len(got) != len(tc.want) {
				t.Fatalf("deploy requests %+v, want %+v", got, tc.want)
			}
			for i, w := range tc.want {
				if g := got[i]; g.Repository != w.repo || g.Tag != w.tag || g.Digest != w.digest {
					t.Errorf("request %d = %s:%s@%s, want %s:%s@%s", i, g.Repository, g.Tag, g.Digest, w.repo, w.tag, w.digest)
				}
			}
		})
	}
}

func hmacHex(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func TestDuplicateDeliveries(t *testing.T) {
	tests := []struct {
		name string
		call call
		// bodyID: the sender gives no delivery id, so the body's hash stands in for one and the
		// same body re-sent after bodyIDWindow deploys again.
		bodyID bool
	}{
		{"dockerhub identical multi-arch deliveries", call{"?secret=" + dockerHubURL, nil, fixture(t, "dockerhub-push.json")}, true},
		{"distribution retry", call{"", fixtureHeaders(t, "distribution-push.headers.txt"), fixture(t, "distribution-push.json")}, false},
		{"ghcr redelivery", call{"", fixtureHeaders(t, "ghcr-package-published.headers.txt"), fixture(t, "ghcr-package-published.json")}, false},
		{"gitea", call{"", fixtureHeaders(t, "gitea-package-created.headers.txt"), fixture(t, "gitea-package-created.json")}, false},
		{"harbor retry", call{"", fixtureHeaders(t, "harbor-push.headers.txt"), fixture(t, "harbor-push.json")}, true},
		{"standard webhooks replay", call{"", fixtureHeaders(t, "standard-webhooks.headers.txt"), fixture(t, "standard-webhooks.json")}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := &recordingDeployer{}
			cfg := fullConfig()
			var mu sync.Mutex
			later := time.Duration(0)
			clock := cfg.Now
			cfg.Now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock().Add(later) }
			h := NewServer(cfg, d, slog.New(slog.DiscardHandler))
			defer func() {
				// The same body again, after the window (within Standard Webhooks' clock skew).
				mu.Lock()
				later = bodyIDWindow + time.Second
				mu.Unlock()
				status, out := send(t, h, tc.call)
				if tc.bodyID && status != 202 || !tc.bodyID && out["status"] != "duplicate" {
					t.Errorf("same delivery %s later: %d %v, want a new deploy only for senders without a delivery id (%v)", later, status, out, tc.bodyID)
				}
			}()
			if status, out := send(t, h, tc.call); status != 202 {
				t.Fatalf("first delivery: %d %v", status, out)
			}
			status, out := send(t, h, tc.call)
			if status != 200 || out["status"] != "duplicate" {
				t.Fatalf("second delivery: %d %v, want 200 duplicate", status, out)
			}
			if n := len(d.requests()); n != 1 {
				t.Errorf("%d deploy requests, want 1", n)
			}
		})
	}
}

func TestFailedDeliveryIsRetriedNotDuplicate(t *testing.T) {
	d := &recordingDeployer{err: errors.New("engine down")}
	h := NewServer(fullConfig(), d, slog.New(slog.DiscardHandler))
	c := call{"", fixtureHeaders(t, "ghcr-package-published.headers.txt"), fixture(t, "ghcr-package-published.json")}
	if status, _ := send(t, h, c); status != 500 {
		t.Fatalf("status %d, want 500", status)
	}
	d.mu.Lock()
	d.err = nil
	d.mu.Unlock()
	if status, out := send(t, h, c); status != 202 {
		t.Fatalf("retry: %d %v, want 202", status, out)
	}
}

func TestDistributionRefusalsAreAcknowledged(t *testing.T) {
	// The registry resends anything but a 2xx forever, blocking later events: a push berth
	// refuses (here a namespace OWNER does not allow) must still be acknowledged.
	d := &recordingDeployer{err: fault.Errorf(fault.Forbidden, "OWNER=acme does not allow namespace evil")}
	h := NewServer(fullConfig(), d, slog.New(slog.DiscardHandler))
	c := call{"", fixtureHeaders(t, "distribution-push.headers.txt"), fixture(t, "distribution-push.json")}
	status, out := send(t, h, c)
	if status != 200 || out["refused"] == nil {
		t.Fatalf("status %d %v, want 200 listing the refusal", status, out)
	}
	// The same refusal from a sender that does not retry forever is an error.
	c = call{"", fixtureHeaders(t, "ghcr-package-published.headers.txt"), fixture(t, "ghcr-package-published.json")}
	if status, out := send(t, h, c); status != 403 {
		t.Fatalf("ghcr: status %d %v, want 403", status, out)
	}
}

func TestDistributionIgnoresWhatIsNotATaggedManifestPush(t *testing.T) {
	body := `{"events":[
	{"id":"1","action":"pull","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"acme/web","tag":"1","digest":"` + digestAMD64 + `"},"request":{"host":"r:5000"}},
	{"id":"2","action":"delete","target":{"repository":"acme/web","digest":"` + digestAMD64 + `"},"request":{"host":"r:5000"}},
	{"id":"3","action":"push","target":{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","repository":"acme/web","digest":"` + digestAMD64 + `"},"request":{"host":"r:5000"}},
	{"id":"4","action":"push","target":{"mediaType":"application/vnd.oci.image.manifest.v1+json","repository":"acme/web","digest":"` + digestAMD64 + `"},"request":{"host":"r:5000"}}]}`
	d := &recordingDeployer{}
	h := NewServer(fullConfig(), d, slog.New(slog.DiscardHandler))
	status, out := send(t, h, call{"", fixtureHeaders(t, "distribution-push.headers.txt"), []byte(body)})
	if status != 200 || out["status"] != "ignored" || len(d.requests()) != 0 {
		t.Fatalf("status %d %v with %d deploys, want 200 ignored and none", status, out, len(d.requests()))
	}
	if r, _ := out["reason"].(string); !strings.Contains(r, "1 untagged manifests") || !strings.Contains(r, "1 blob pushes") {
		t.Errorf("reason %q does not say what was skipped", r)
	}
}

func TestKnownAnswerVectors(t *testing.T) {
	// GitHub's documented example.
	if !(Secrets{"It's a Secret to Everybody"}).validHMAC([]byte("Hello, World!"),
		"757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17") {
		t.Error("GitHub known-answer vector does not verify")
	}
	// Standard Webhooks' reference library test.
	s := standardWebhooks{keys: Secrets{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}
	r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
	r.Header.Set("Webhook-Id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	r.Header.Set("Webhook-Timestamp", "1614265330")
	r.Header.Set("Webhook-Signature", "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	if err := s.authenticate(r, []byte(`{"test": 2432232314}`), time.Unix(1614265330, 0)); err != nil {
		t.Errorf("Standard Webhooks known-answer vector: %v", err)
	}
}

func TestRecentForgetsOldestFirst(t *testing.T) {
	r := newRecent(2)
	now := time.Unix(1_700_000_000, 0)
	for _, k := range []string{"a", "b", "c"} {
		if !r.add(k, now, 0) {
			t.Fatalf("%s reported as seen", k)
		}
	}
	if !r.add("a", now, 0) {
		t.Error("a should have been forgotten after two newer keys")
	}
	if r.add("c", now.Add(time.Hour), 0) {
		t.Error("c should still be remembered")
	}
	if len(r.set) > 2 {
		t.Errorf("remembers %d keys, bound is 2", len(r.set))
	}
}

// TestRecentBodyIDsExpire: a key with a time to live is a duplicate within it and new after.
func TestRecentBodyIDsExpire(t *testing.T) {
	r := newRecent(8)
	now := time.Unix(1_700_000_000, 0)
	if !r.add("body", now, bodyIDWindow) || r.add("body", now.Add(bodyIDWindow-time.Second), bodyIDWindow) {
		t.Fatal("a body re-sent within the window must be a duplicate")
	}
	if !r.add("body", now.Add(bodyIDWindow), bodyIDWindow) {
		t.Error("a body re-sent after the window must be new")
	}
	if r.add("body", now.Add(bodyIDWindow+time.Second), bodyIDWindow) {
		t.Error("the re-sent body starts a new window")
	}
}

func TestSecretsNeverPrint(t *testing.T) {
	var b strings.Builder
	log := slog.New(slog.NewTextHandler(&b, nil))
	log.Info("cfg", "secrets", fullConfig().GHCR, "one", Secret("hunter2-hunter2"))
	if strings.Contains(b.String(), fixtureSecret) || strings.Contains(b.String(), "hunter2") {
		t.Errorf("secret in log: %s", b.String())
	}
}
