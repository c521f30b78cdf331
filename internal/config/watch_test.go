package config

import (
	"strings"
	"testing"
)

// TestWatchDefaults: a bad WATCH, WATCH_INTERVAL or WATCH_WINDOW stops berth at start with
// a message naming the variable and what it takes.
func TestWatchDefaults(t *testing.T) {
	for _, tc := range []struct {
		w    Watching
		want string
	}{
		{Watching{Watch: "sometimes"}, `WATCH="sometimes" is none of labelled, all or off`},
		{Watching{WatchInterval: 1}, "WATCH_INTERVAL=1ns is shorter than 1s"},
		{Watching{WatchMinAge: -1}, "WATCH_MIN_AGE=-1ns must not be negative"},
		{Watching{WatchWindow: "Mon-Fri 02:00-04:00 Europe/Nowhere"}, `WATCH_WINDOW: window "Mon-Fri 02:00-04:00 Europe/Nowhere": unknown time zone "Europe/Nowhere"`},
		{Watching{WatchWindow: "nightly"}, `WATCH_WINDOW: window "nightly" is not like`},
		{Watching{Watch: "ALL", WatchWindow: "Sat,Sun 00:00-06:00 UTC"}, ""},
	} {
		d, err := tc.w.WatchDefaults()
		if tc.want == "" {
			if err != nil || d.Watch != "all" || d.Window == nil {
				t.Errorf("%+v: %+v, %v", tc.w, d, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.w, err, tc.want)
		}
	}
}
