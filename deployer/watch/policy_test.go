package watch

import (
	"strings"
	"testing"
	"time"
)

func TestParsePolicy(t *testing.T) {
	cases := []struct {
		name   string
		labels map[string]string
		def    Defaults
		want   Policy
		err    string
	}{
		{name: "unlabelled is not watched", want: Policy{Interval: DefaultInterval}},
		{name: "labelled", labels: map[string]string{LabelWatch: "true", LabelInterval: "30m", LabelMinAge: "72h", LabelApprove: "manual"},
			want: Policy{Mode: ModeDeploy, Interval: 30 * time.Minute, MinAge: 72 * time.Hour, Manual: true}},
		{name: "notify", labels: map[string]string{LabelWatch: "notify"}, want: Policy{Mode: ModeNotify, Interval: DefaultInterval}},
		{name: "notify semver", labels: map[string]string{LabelWatch: "notify", LabelTagPolicy: "semver"},
			want: Policy{Mode: ModeNotify, Interval: DefaultInterval, NewerTags: true}},
		{name: "semver deploys no newer tag", labels: map[string]string{LabelWatch: "true", LabelTagPolicy: "semver"},
			want: Policy{Mode: ModeDeploy, Interval: DefaultInterval}},
		{name: "WATCH=all", def: Defaults{Watch: WatchAll, Interval: time.Hour, MinAge: time.Hour},
			want: Policy{Mode: ModeDeploy, Interval: time.Hour, MinAge: time.Hour}},
		{name: "WATCH=all opt-out", labels: map[string]string{LabelWatch: "false"}, def: Defaults{Watch: WatchAll}, want: Policy{Interval: DefaultInterval}},
		{name: "WATCH=off wins", labels: map[string]string{LabelWatch: "true"}, def: Defaults{Watch: WatchOff}, want: Policy{Interval: DefaultInterval}},
		{name: "bad mode", labels: map[string]string{LabelWatch: "yes"}, err: `label berth.watch="yes" is none of true, notify or false`},
		{name: "bad interval", labels: map[string]string{LabelInterval: "soon"}, err: `label berth.watch.interval="soon" is not a duration`},
		{name: "too short", labels: map[string]string{LabelInterval: "10ms"}, err: "shorter than 1s"},
		{name: "bad approve", labels: map[string]string{LabelApprove: "maybe"}, err: "neither manual nor auto"},
		{name: "bad window", labels: map[string]string{LabelWindow: "weekends"}, err: "label berth.window: window \"weekends\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePolicy(tc.labels, tc.def)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParsePolicy = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

func TestWindow(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Skip("no time zone database:", err)
	}
	at := func(s string) time.Time {
		tm, err := time.ParseInLocation("2006-01-02 15:04", s, berlin)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	cases := []struct {
		window string
		at     time.Time
		open   bool
		next   time.Time
	}{
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2026-03-02 02:30"), true, at("2026-03-02 02:30")},        // a Monday
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2026-03-02 04:00"), false, at("2026-03-03 02:00")},       // the end is outside
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2026-03-06 05:00"), false, at("2026-03-09 02:00")},       // Friday after: Monday
		{"Mon-Fri 02:00-04:00 Europe/Berlin", at("2026-03-02 01:30").UTC(), false, at("2026-03-02 02:00")}, // judged in Berlin
		{"Sat,Sun 23:00-01:00 Europe/Berlin", at("2026-03-09 00:30"), true, at("2026-03-09 00:30")},        // Sunday's window past midnight
		{"Sat,Sun 23:00-01:00 Europe/Berlin", at("2026-03-10 00:30"), false, at("2026-03-14 23:00")},
		// DST starts 2026-03-29 in Berlin: 02:00 becomes 03:00; the window is open from 03:00.
		{"* 02:00-04:00 Europe/Berlin", at("2026-03-29 01:59"), false, time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)},
		{"* 02:00-04:00 Europe/Berlin", at("2026-03-29 03:30"), true, at("2026-03-29 03:30")},
		// DST ends 2026-10-25: 02:00-03:00 happens twice, both inside.
		{"* 02:00-04:00 Europe/Berlin", time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), true, time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC)},
		{"* 02:00-04:00 Europe/Berlin", time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), true, time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)},
		{"mon 22:00-23:00", time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC), true, time.Date(2026, 3, 2, 22, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		w, err := ParseWindow(tc.window)
		if err != nil {
			t.Fatalf("ParseWindow(%q): %v", tc.window, err)
		}
		if got := w.Contains(tc.at); got != tc.open {
			t.Errorf("%q at %s: open %v, want %v", tc.window, tc.at, got, tc.open)
		}
		if got := w.Next(tc.at); !got.Equal(tc.next) {
			t.Errorf("%q at %s: next opening %s, want %s", tc.window, tc.at, got, tc.next.In(berlin))
		}
	}
}

func TestParseWindowErrors(t *testing.T) {
	for window, want := range map[string]string{
		"":                                 "is not like",
		"Mon-Fri":                          "is not like",
		"Mon-Xyz 02:00-04:00":              "days \"Mon-Xyz\"",
		"Mon 2am-4am":                      "hours \"2am-4am\"",
		"Mon 25:00-26:00":                  "hours",
		"Mon 02:00-02:00":                  "starts and ends at the same time",
		"Mon 02:00-04:00 Mars/Olympus":     "unknown time zone \"Mars/Olympus\"",
		"Mon 02:00-04:00 Europe/Berlin xx": "is not like",
	} {
		if _, err := ParseWindow(window); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseWindow(%q) = %v, want an error containing %q", window, err, want)
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 3, 2, 12, 0, 0, 0, time.UTC) // a Monday
	night, _ := ParseWindow("* 02:00-04:00")
	cases := []struct {
		name string
		p    Policy
		seen Seen
		run  string
		want Verdict
	}{
		{name: "runs it", p: Policy{Mode: ModeDeploy}, run: "new", want: Verdict{Action: ActionNone}},
		{name: "deploy", p: Policy{Mode: ModeDeploy}, run: "old", want: Verdict{Action: ActionDeploy}},
		{name: "notify", p: Policy{Mode: ModeNotify, MinAge: time.Hour}, run: "old", want: Verdict{Action: ActionNotify}},
		{name: "too young", p: Policy{Mode: ModeDeploy, MinAge: 72 * time.Hour}, seen: Seen{FirstSeen: now.Add(-time.Hour)}, run: "old",
			want: Verdict{Action: ActionWait, Why: WaitMinAge, Until: now.Add(71 * time.Hour)}},
		{name: "old enough", p: Policy{Mode: ModeDeploy, MinAge: 72 * time.Hour}, seen: Seen{FirstSeen: now.Add(-72 * time.Hour)}, run: "old",
			want: Verdict{Action: ActionDeploy}},
		{name: "approval", p: Policy{Mode: ModeDeploy, Manual: true}, run: "old", want: Verdict{Action: ActionWait, Why: WaitApproval}},
		{name: "approved", p: Policy{Mode: ModeDeploy, Manual: true}, seen: Seen{Approved: true}, run: "old", want: Verdict{Action: ActionDeploy}},
		{name: "outside window", p: Policy{Mode: ModeDeploy, Window: night}, run: "old",
			want: Verdict{Action: ActionWait, Why: WaitWindow, Until: time.Date(2026, 3, 3, 2, 0, 0, 0, time.UTC)}},
	}
	for _, tc := range cases {
		if got := Decide(tc.p, tc.run, "new", tc.seen, now); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}
