package gate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
)

func TestConfigFromLabels(t *testing.T) {
	def := Config{Image: "scanner:1", Timeout: time.Minute}
	for _, tc := range []struct {
		labels map[string]string
		want   Config
		bad    string
	}{
		{labels: nil, want: Config{Image: "scanner:1", Timeout: time.Minute, Source: "env"}},
		{labels: map[string]string{Label: "off"}, want: Config{}},
		{labels: map[string]string{LabelURL: "http://127.0.0.1:1/p", LabelTimeout: "5s"},
			want: Config{URL: "http://127.0.0.1:1/p", Timeout: 5 * time.Second, Source: "label"}},
		{labels: map[string]string{LabelTimeout: "soon"}, bad: "berth.gate.timeout"},
		{labels: map[string]string{LabelImage: "x:1", LabelURL: "http://a"}, bad: "set one"},
		{labels: map[string]string{LabelImage: "x:1", LabelCommand: "[oops"}, bad: "JSON array"},
		{labels: map[string]string{Label: "maybe"}, bad: "only \"off\""},
	} {
		got, err := For(def, tc.labels)
		if tc.bad != "" {
			if fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%v: %v, want invalid naming %q", tc.labels, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%v: %+v, %v; want %+v", tc.labels, got, err, tc.want)
		}
	}
}

// TestPolicyEndpoint covers the HTTP gate, which needs no engine: a 2xx answer passes, any
// other vetoes with the answer's last lines, and an endpoint that hangs vetoes at the timeout.
func TestPolicyEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		hang    bool
		passes  bool
		timeout bool
		reason  string
	}{
		{name: "agrees", status: http.StatusNoContent, passes: true},
		{name: "refuses", status: http.StatusForbidden, reason: "policy endpoint answered 403 Forbidden"},
		{name: "hangs", hang: true, timeout: true, reason: "did not answer within 200ms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.hang {
					<-release // until the test ends: the unread body keeps the server from noticing the client left
					return
				}
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte("policy says no:\nunsigned image\n"))
			}))
			defer srv.Close()
			defer close(release)
			res, err := Runner{}.Run(context.Background(), Config{URL: srv.URL, Timeout: 200 * time.Millisecond}, Request{Project: "shop", Service: "web"})
			var veto *Veto
			if tc.passes {
				if err != nil || !res.Passed || res.Status != tc.status {
					t.Fatalf("%+v, %v; want passed with status %d", res, err, tc.status)
				}
				return
			}
			if !errors.As(err, &veto) || res.Passed || res.TimedOut != tc.timeout || !strings.Contains(res.Reason, tc.reason) {
				t.Fatalf("%+v, %v; want a veto saying %q (timed out %v)", res, err, tc.reason, tc.timeout)
			}
			if !tc.hang && !strings.HasSuffix(err.Error(), "; last output: unsigned image") {
				t.Errorf("veto %q does not end with the endpoint's last line", err)
			}
		})
	}
}

// TestGateURLIsRedacted: a token in GATE_URL never reaches a record, a message or the JSON the
// status API shows, also when the endpoint cannot be reached.
func TestGateURLIsRedacted(t *testing.T) {
	const raw = "http://user:pa55@127.0.0.1:1/hook/s3cret?token=s3cret"
	res, err := Runner{}.Run(context.Background(), Config{URL: raw, Timeout: time.Second}, Request{Project: "shop", Service: "web"})
	js, _ := json.Marshal(Config{URL: raw})
	vetErr := Config{URL: raw, Image: "x"}.Validate()
	for what, shown := range map[string]string{"target": res.Target, "reason": res.Reason, "veto": fmt.Sprint(err), "json": string(js), "validate": fmt.Sprint(vetErr)} {
		if strings.Contains(shown, "s3cret") || strings.Contains(shown, "pa55") {
			t.Errorf("%s shows the URL's secret: %s", what, shown)
		}
	}
	if res.Target != "http://127.0.0.1:1/…" {
		t.Errorf("target %q, want scheme and host", res.Target)
	}
}
