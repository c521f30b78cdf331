package notify

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
)

func TestParseTargets(t *testing.T) {
	got, err := ParseTargets(" http://a.example/x, slack+https://hooks.example/T/B/secret ,discord+https://d.example/api/webhooks/1/tok,json+http://j.example/ ")
	if err != nil {
		t.Fatal(err)
	}
	want := []Target{{"http://a.example/x", FormatJSON}, {"https://hooks.example/T/B/secret", FormatSlack},
		{"https://d.example/api/webhooks/1/tok", FormatDiscord}, {"http://j.example/", FormatJSON}}
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 4 || got[1] != want[1] {
		t.Errorf("targets = %v, want %v", got, want)
	}
	if s := fmt.Sprint(got[1]); strings.Contains(s, "secret") {
		t.Errorf("a target prints its secret path: %s", s)
	}
	for _, bad := range []string{"ftp://x.example/", "teams+https://x.example/", "not a url", "https://"} {
		if _, err := ParseTargets(bad); err == nil {
			t.Errorf("ParseTargets(%q) accepted", bad)
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
	n := New([]Target{{srv.URL + "/flaky", FormatJSON}, {srv.URL + "/refusing", FormatJSON}},
		Options{Attempts: 3, Backoff: time.Millisecond})
	n.Notify(deployer.Record{ID: "skip", Outcome: deployer.OutcomeUpToDate})
	n.Notify(deployer.Record{ID: "d1", Outcome: deployer.OutcomeFailed, Repository: "ghcr.io/acme/web", Tag: "1", Error: "boom", Duration: 1500 * time.Millisecond})
	if err := n.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-got:
		if ev.Deploy != "d1" || ev.Namespace != "acme" || ev.Outcome != deployer.OutcomeFailed || ev.Error != "boom" || ev.Duration != 1.5 {
			t.Errorf("event = %+v", ev)
		}
	default:
		t.Fatal("the flaky endpoint never got the event")
	}
	if flaky.Load() != 3 || refusing.Load() != 1 {
		t.Errorf("attempts: flaky %d (want 3), refusing %d (want 1)", flaky.Load(), refusing.Load())
	}
}
