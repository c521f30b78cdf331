package health

import (
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
)

func TestPolicyFromLabels(t *testing.T) {
	def := Policy{Timeout: DefaultTimeout, Settle: DefaultSettle}
	for _, tc := range []struct {
		labels map[string]string
		want   Policy
		bad    string
	}{
		{labels: nil, want: def},
		{labels: map[string]string{LabelTimeout: "90s", LabelSettle: "10s"}, want: Policy{Timeout: 90 * time.Second, Settle: 10 * time.Second}},
		{labels: map[string]string{LabelTimeout: "3s"}, want: Policy{Timeout: 3 * time.Second, Settle: 3 * time.Second}}, // settle never outlasts the wait
		{labels: map[string]string{LabelTimeout: "soon"}, bad: "service web: label berth.health-timeout=\"soon\""},
		{labels: map[string]string{LabelSettle: "-1s"}, bad: "berth.health-settle"},
	} {
		got, err := For(def, "web", tc.labels)
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
