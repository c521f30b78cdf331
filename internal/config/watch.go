package config

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/watch"
)

// Watching is watch mode's configuration: which services berth watches without a label, and
// the defaults their labels override (deployer/watch, docs/watch.md).
type Watching struct {
	Watch         string        `envconfig:"WATCH" default:"labelled"` // labelled, all or off
	WatchInterval time.Duration `envconfig:"WATCH_INTERVAL" default:"6h"`
	WatchMinAge   time.Duration `envconfig:"WATCH_MIN_AGE"`
	WatchWindow   string        `envconfig:"WATCH_WINDOW"` // e.g. "Mon-Fri 02:00-04:00 Europe/Berlin"; unset: any time
	WatchParallel int           `envconfig:"WATCH_PARALLEL" default:"4"`
}

func watchVars() []string {
	return []string{"WATCH", "WATCH_INTERVAL", "WATCH_MIN_AGE", "WATCH_WINDOW", "WATCH_PARALLEL"}
}

// WatchDefaults is watch mode's global settings, or a message saying which variable is wrong;
// zero durations and WATCH_PARALLEL=0 take the defaults.
func (w Watching) WatchDefaults() (watch.Defaults, error) {
	d := watch.Defaults{Watch: strings.ToLower(strings.TrimSpace(w.Watch)), Interval: w.WatchInterval, MinAge: w.WatchMinAge}
	if d.Watch == "" {
		d.Watch = watch.WatchLabelled
	}
	switch {
	case !slices.Contains([]string{watch.WatchLabelled, watch.WatchAll, watch.WatchOff}, d.Watch):
		return d, fmt.Errorf("WATCH=%q is none of labelled, all or off", w.Watch)
	case w.WatchInterval != 0 && w.WatchInterval < watch.MinInterval:
		return d, fmt.Errorf("WATCH_INTERVAL=%s is shorter than %s; registries are asked once per interval per service, e.g. 6h", w.WatchInterval, watch.MinInterval)
	case w.WatchMinAge < 0:
		return d, fmt.Errorf("WATCH_MIN_AGE=%s must not be negative, e.g. 72h", w.WatchMinAge)
	case w.WatchParallel < 0:
		return d, fmt.Errorf("WATCH_PARALLEL=%d must be at least 1 (0 takes the default)", w.WatchParallel)
	}
	if w.WatchWindow != "" {
		win, err := watch.ParseWindow(w.WatchWindow)
		if err != nil {
			return d, fmt.Errorf("WATCH_WINDOW: %w", err)
		}
		d.Window = win
	}
	return d, nil
}
