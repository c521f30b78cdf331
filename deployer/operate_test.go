package deployer

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestCompareSemver(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1.0.0", "1.0.0", 0},
		{"v1.2.3", "1.2.3", 0},
		{"1.10.0", "1.9.9", 1},
		{"2.0.0", "10.0.0", -1},
		{"1.0.0-alpha", "1.0.0", -1},
		{"1.0.0-alpha.1", "1.0.0-alpha", 1},
		{"1.0.0-alpha.beta", "1.0.0-alpha.1", 1},
		{"1.0.0-beta.11", "1.0.0-beta.2", 1},
		{"1.0.0+build.5", "1.0.0+build.1", 0},
	} {
		a, okA := parseSemver(c.a)
		b, okB := parseSemver(c.b)
		if !okA || !okB {
			t.Fatalf("parse %q %q: %v %v", c.a, c.b, okA, okB)
		}
		if got := compareSemver(a, b); got != c.want {
			t.Errorf("compare(%s, %s) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
	for _, bad := range []string{"", "latest", "1.0", "1.0.0.0", "01.0.0", "1.0.0-", "1.x.0"} {
		if _, ok := parseSemver(bad); ok {
			t.Errorf("parseSemver(%q) accepted", bad)
		}
	}
}

func TestSelects(t *testing.T) {
	for _, c := range []struct {
		optIn  bool
		labels types.Labels
		want   string // "" deploys; else a part of the reason
	}{
		{false, nil, ""},
		{false, types.Labels{LabelEnable: "false"}, "berth.enable=false"},
		{false, types.Labels{LabelEnable: "true"}, ""},
		{false, types.Labels{LabelEnable: "maybe"}, "neither true nor false"},
		{true, nil, "OPT_IN=true"},
		{true, types.Labels{LabelEnable: "true"}, ""},
		{false, types.Labels{LabelTagPolicy: "semver"}, ""},
		{false, types.Labels{LabelTagPolicy: "newest"}, "neither exact nor semver"},
	} {
		d := &Deployer{optIn: c.optIn}
		got := d.selects(c.labels)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("optIn=%v labels=%v: %q, want %q", c.optIn, c.labels, got, c.want)
		}
	}
}

func TestParseNotifyTargets(t *testing.T) {
	got, err := ParseNotifyTargets(" http://a.example/x, slack+https://hooks.example/T/B/secret ,discord+https://d.example/api/webhooks/1/tok,json+http://j.example/ ")
	if err != nil {
		t.Fatal(err)
	}
	want := []NotifyTarget{{"http://a.example/x", FormatJSON}, {"https://hooks.example/T/B/secret", FormatSlack},
		{"https://d.example/api/webhooks/1/tok", FormatDiscord}, {"http://j.example/", FormatJSON}}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 4 || got[1] != want[1] {
		t.Errorf("targets = %v, want %v", got, want)
	}
	if s := fmt.Sprint(got[1]); strings.Contains(s, "secret") {
		t.Errorf("a target prints its secret path: %s", s)
	}
	for _, bad := range []string{"ftp://x.example/", "teams+https://x.example/", "not a url", "https://"} {
		if _, err := ParseNotifyTargets(bad); err == nil {
			t.Errorf("ParseNotifyTargets(%q) accepted", bad)
		}
	}
}

// TestNotifierRetries: a 5xx is retried until it succeeds, a 4xx is not retried, and events
// for other outcomes than deployed, failed, rolled back and would-deploy are not sent.
func TestNotifierRetries(t *testing.T) {
	var flaky, refusing atomic.Int32
	got := make(chan Event, 4)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky":
			if flaky.Add(1) < 3 {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			var ev Event
			_ = json.NewDecoder(r.Body).Decode(&ev)
			got <- ev
		case "/refusing":
			refusing.Add(1)
			w.WriteHeader(http.StatusForbidden)
		}
	}))
	defer srv.Close()
	n := NewNotifier([]NotifyTarget{{srv.URL + "/flaky", FormatJSON}, {srv.URL + "/refusing", FormatJSON}},
		NotifyOptions{Attempts: 3, Backoff: time.Millisecond})
	n.Notify(Record{ID: "skip", Outcome: OutcomeUpToDate})
	n.Notify(Record{ID: "d1", Outcome: OutcomeFailed, Repository: "ghcr.io/acme/web", Tag: "1", Error: "boom", Duration: 1500 * time.Millisecond})
	if err := n.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Deploy != "d1" || ev.Namespace != "acme" || ev.Outcome != OutcomeFailed || ev.Error != "boom" || ev.Duration != 1.5 {
			t.Errorf("event = %+v", ev)
		}
	default:
		t.Fatal("the flaky endpoint never got the event")
	}
	if flaky.Load() != 3 || refusing.Load() != 1 {
		t.Errorf("attempts: flaky %d (want 3), refusing %d (want 1)", flaky.Load(), refusing.Load())
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
		raw, _ := base64.URLEncoding.DecodeString(c.header(ref))
		m := map[string]string{}
		_ = json.Unmarshal(raw, &m)
		return m
	}
	for ref, want := range map[string]string{"acme/web:1": "ann:pw1", "ghcr.io/acme/web:1": "carol:pw3", "127.0.0.1:5001/acme/web": "dan:pw:4"} {
		if m := decode(ref); m["username"]+":"+m["password"] != want {
			t.Errorf("login for %s = %v, want %s", ref, m, want)
		}
	}
	if c.header("quay.io/acme/web:1") != "" {
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
