package handler

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/handler/web"
)

const pageToken = "page-token-0123456789"

// fakeOps stands in for the deployer behind the status page and POST /api/deploy: what is
// under test here is the HTTP side (who may see and do what), not a deploy.
type fakeOps struct {
	mu       sync.Mutex
	services []deployer.ServiceStatus
	records  []deployer.Record
	deploys  [][2]string // service, image asked for
	err      error
}

func (f *fakeOps) Services(context.Context) ([]deployer.ServiceStatus, error) {
	return f.services, nil
}

func (f *fakeOps) Records(n int) []deployer.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	if n <= 0 || n > len(f.records) {
		n = len(f.records)
	}
	return append([]deployer.Record(nil), f.records[:n]...)
}

func (f *fakeOps) DeployService(_ context.Context, service, image string) (deployer.Ticket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return deployer.Ticket{}, f.err
	}
	f.deploys = append(f.deploys, [2]string{service, image})
	return deployer.Ticket{ID: "d1", Image: "registry.test/shop/web:1.4", Services: []string{"shop/web"}}, nil
}

func (f *fakeOps) RollBackService(ctx context.Context, service string) (deployer.Ticket, error) {
	return f.DeployService(ctx, service, "previous")
}

func (f *fakeOps) asked() [][2]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([][2]string(nil), f.deploys...)
}

// Plan names the fake services whose compose image is the one asked for.
func (f *fakeOps) Plan(_ context.Context, req deployer.Request) (deployer.Ticket, error) {
	t := deployer.Ticket{ID: "p1", Image: req.Repository + ":" + req.Tag, Services: []string{}}
	for _, s := range f.services {
		if s.Image == t.Image && s.Deploys {
			t.Services = append(t.Services, s.Project+"/"+s.Service)
		}
	}
	return t, nil
}

// newPageServer serves NewServer with the status page on fake services and history.
func newPageServer(t *testing.T) (*httptest.Server, *fakeOps, *web.Hub) {
	t.Helper()
	srv, ops, hub, _ := newOpsServer(t, nil)
	return srv, ops, hub
}

// newOpsServer is newPageServer with the Ops changed by edit, and the push deployer.
func newOpsServer(t *testing.T, edit func(*Ops)) (*httptest.Server, *fakeOps, *web.Hub, *recordingDeployer) {
	t.Helper()
	ops := &fakeOps{
		services: []deployer.ServiceStatus{{Project: "shop", Service: "web", Image: "registry.test/shop/web:1.4", Deploys: true,
			RepoDigest:   "registry.test/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ImageLabels:  map[string]string{"org.opencontainers.image.version": "1.4.2", "org.opencontainers.image.revision": "abcdef0123456789", "org.opencontainers.image.source": "https://git.test/shop"},
			Containers:   []deployer.ContainerStatus{{Name: "shop-web-1", State: "running", Health: "healthy"}},
			FailedImages: []deployer.FailedImage{{ID: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", Reason: "unhealthy"}},
			Previous:     "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}},
		records: []deployer.Record{{ID: "r1", Project: "shop", Service: "web", Source: "dockerhub", Repository: "registry.test/shop/web", Tag: "1.4",
			Started: time.Unix(1795183407, 0), Duration: 1500 * time.Millisecond, Outcome: deployer.OutcomeDeployed,
			Steps: []deployer.Step{{Name: "pull", Took: time.Second}, {Name: "start", Container: "shop-web-1"}}}},
	}
	hub := web.NewHub()
	cfg := Config{Ops: Ops{APIToken: pageToken, Services: ops, History: ops, Deployer: ops, Events: hub}}
	if edit != nil {
		edit(&cfg.Ops)
	}
	push := &recordingDeployer{}
	srv := httptest.NewServer(NewServer(cfg, push, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	return srv, ops, hub, push
}

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func pageCall(t *testing.T, method, u string, body io.Reader, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	res, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// login posts the API token to the login form and returns the session cookie.
func login(t *testing.T, srv *httptest.Server) *http.Cookie {
	t.Helper()
	res, _ := pageCall(t, http.MethodPost, srv.URL+"/ui/login", strings.NewReader("token="+pageToken),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("login: status %d, want 303", res.StatusCode)
	}
	for _, c := range res.Cookies() {
		if c.Name == "berth_session" {
			return c
		}
	}
	t.Fatal("login set no berth_session cookie")
	return nil
}

// csrfOf reads the CSRF token the page rendered for the session.
func csrfOf(t *testing.T, srv *httptest.Server, session *http.Cookie) string {
	t.Helper()
	_, body := pageCall(t, http.MethodGet, srv.URL+"/ui/", nil, http.Header{"Cookie": {session.String()}})
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("the page carries no CSRF token:\n%s", body)
	}
	return m[1]
}

// TestPageNeedsTheAPIToken: the page shows a login form to a caller without credentials, and
// the services only to one with the token (bearer) or a session; every answer carries the CSP.
func TestPageNeedsTheAPIToken(t *testing.T) {
	srv, _, _ := newPageServer(t)
	session := login(t, srv)
	forged := &http.Cookie{Name: "berth_session", Value: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.bm90LWEtc2lnbmF0dXJl"}
	tests := []struct {
		name   string
		header http.Header
		status int
		want   string
	}{
		{"no credential", nil, http.StatusUnauthorized, `name="token"`},
		{"forged cookie", http.Header{"Cookie": {forged.String()}}, http.StatusUnauthorized, `name="token"`},
		{"wrong bearer", http.Header{"Authorization": {"Bearer wrong-token-0123456789"}}, http.StatusUnauthorized, `"error":"unauthorized"`},
		{"bearer", http.Header{"Authorization": {"Bearer " + pageToken}}, http.StatusOK, `data-service="shop/web"`},
		{"session", http.Header{"Cookie": {session.String()}}, http.StatusOK, `data-service="shop/web"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := pageCall(t, http.MethodGet, srv.URL+"/ui/", nil, tc.header)
			if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want %d with %q in:\n%s", res.StatusCode, tc.status, tc.want, body)
			}
			if csp := res.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
				t.Errorf("Content-Security-Policy = %q", csp)
			}
			if tc.status == http.StatusOK {
				for _, want := range []string{"1.4.2", "sha256:0123456789ab<", "not retried: <code>sha256:fedcba987654<", "running (healthy)", "deployed"} {
					if !strings.Contains(body, want) {
						t.Errorf("the page lacks %q:\n%s", want, body)
					}
				}
			}
		})
	}
	if res, _ := pageCall(t, http.MethodGet, srv.URL+"/", nil, nil); res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/ui/" {
		t.Errorf("GET / = %d to %q, want 303 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
}

// TestLoginCookie: the session cookie is HttpOnly and SameSite=Strict; a wrong token sets none.
func TestLoginCookie(t *testing.T) {
	srv, _, _ := newPageServer(t)
	c := login(t, srv)
	if !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Secure {
		t.Errorf("cookie HttpOnly=%v SameSite=%v Secure=%v; want HttpOnly, Strict, not Secure on plain HTTP", c.HttpOnly, c.SameSite, c.Secure)
	}
	res, body := pageCall(t, http.MethodPost, srv.URL+"/ui/login", strings.NewReader("token=wrong"),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if res.StatusCode != http.StatusUnauthorized || len(res.Cookies()) != 0 || !strings.Contains(body, "not berth&#39;s API token") {
		t.Errorf("wrong token: status %d, cookies %v, body:\n%s", res.StatusCode, res.Cookies(), body)
	}
	res, _ = pageCall(t, http.MethodPost, srv.URL+"/ui/login", strings.NewReader("token="+pageToken),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Sec-Fetch-Site": {"cross-site"}})
	if res.StatusCode != http.StatusForbidden || len(res.Cookies()) != 0 {
		t.Errorf("cross-site login: status %d, cookies %v; want 403 and none", res.StatusCode, res.Cookies())
	}

	tlsSrv := httptest.NewTLSServer(srv.Config.Handler)
	defer tlsSrv.Close()
	res, err := tlsSrv.Client().PostForm(tlsSrv.URL+"/ui/login", url.Values{"token": {pageToken}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	secure := false
	for _, c := range res.Request.Response.Cookies() {
		secure = secure || c.Name == "berth_session" && c.Secure
	}
	if !secure {
		t.Error("the session cookie set over TLS is not Secure")
	}
}

// TestDeployButtonNeedsCSRF: a deploy or roll-back from a session must carry the session's
// CSRF token and come from the page's own origin; a bearer token needs neither. Refusals
// deploy nothing.
func TestDeployButtonNeedsCSRF(t *testing.T) {
	for _, button := range []string{"deploy", "rollback"} {
		t.Run(button, func(t *testing.T) { testButtonNeedsCSRF(t, button) })
	}
}

func testButtonNeedsCSRF(t *testing.T, button string) {
	srv, ops, _ := newPageServer(t)
	session := login(t, srv)
	token := csrfOf(t, srv, session)
	form := "application/x-www-form-urlencoded"
	tests := []struct {
		name   string
		body   string
		header http.Header
		status int
	}{
		{"no credential", "service=shop/web&csrf=" + token, http.Header{"Content-Type": {form}}, http.StatusUnauthorized},
		{"csrf missing", "service=shop/web", http.Header{"Content-Type": {form}, "Cookie": {session.String()}}, http.StatusForbidden},
		{"csrf wrong", "service=shop/web&csrf=x" + token, http.Header{"Content-Type": {form}, "Cookie": {session.String()}}, http.StatusForbidden},
		{"cross-site", "service=shop/web&csrf=" + token, http.Header{"Content-Type": {form}, "Cookie": {session.String()}, "Sec-Fetch-Site": {"cross-site"}}, http.StatusForbidden},
		{"foreign origin", "service=shop/web&csrf=" + token, http.Header{"Content-Type": {form}, "Cookie": {session.String()}, "Origin": {"https://evil.test"}}, http.StatusForbidden},
		{"session and csrf", "service=shop/web&csrf=" + token, http.Header{"Content-Type": {form}, "Cookie": {session.String()}, "Sec-Fetch-Site": {"same-origin"}}, http.StatusAccepted},
		{"bearer", "service=shop/web", http.Header{"Content-Type": {form}, "Authorization": {"Bearer " + pageToken}}, http.StatusAccepted},
	}
	accepted := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, body := pageCall(t, http.MethodPost, srv.URL+"/ui/"+button, strings.NewReader(tc.body), tc.header)
			if res.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", res.StatusCode, tc.status, body)
			}
			if tc.status == http.StatusAccepted {
				accepted++
				if !strings.Contains(body, `"id":"d1"`) {
					t.Errorf("answer lacks the ticket: %s", body)
				}
			}
			if got := len(ops.asked()); got != accepted {
				t.Errorf("%d deploys asked for, want %d", got, accepted)
			}
		})
	}
}

// TestEventsNameFinishedDeploys: the stream names the newest kept record first, then each
// record published, so the page knows when to refresh.
func TestEventsNameFinishedDeploys(t *testing.T) {
	srv, _, hub := newPageServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/events", nil)
	req.Header.Set("Authorization", "Bearer "+pageToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); res.StatusCode != http.StatusOK || ct != "text/event-stream" {
		t.Fatalf("status %d, Content-Type %q", res.StatusCode, ct)
	}
	buf := make([]byte, 4096)
	read := func(want string) {
		t.Helper()
		got := ""
		for i := 0; i < 20 && !strings.Contains(got, want); i++ {
			n, err := res.Body.Read(buf)
			got += string(buf[:n])
			if err != nil {
				break
			}
		}
		if !strings.Contains(got, want) {
			t.Fatalf("stream said %q, want %q", got, want)
		}
	}
	read("data: r1/shop/web\n")
	hub.Publish(deployer.Record{ID: "r2", Project: "shop", Service: "web"})
	read("data: r2/shop/web\n")
	hub.Step(deployer.StepEvent{Deploy: "r3", Project: "shop", Service: "web", Step: deployer.Step{Name: "pull", Container: "a\nb"}})
	read("event: step\ndata: {\"deploy\":\"r3\",\"project\":\"shop\",\"service\":\"web\",\"step\":{\"name\":\"pull\",\"container\":\"a\\nb\"")
	if res, _ := pageCall(t, http.MethodGet, srv.URL+"/ui/events", nil, nil); res.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without a credential: %d, want 401", res.StatusCode)
	}
}
