package deployer

import (
	"strings"
	"testing"

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
