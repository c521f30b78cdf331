package command

import (
	"context"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/watch"
)

// startWatch starts watch mode (docs/watch.md) unless WATCH=off; it runs until ctx ends.
func startWatch(ctx context.Context, w *wiring) error {
	defaults, err := w.cfg.WatchDefaults()
	if err != nil || defaults.Watch == watch.WatchOff {
		return err
	}
	wt, err := w.deployer.NewWatcher(deployer.WatchOptions{Defaults: defaults, Limit: w.cfg.WatchParallel, OnCheck: w.metrics.ObserveWatchCheck})
	if err != nil {
		return err
	}
	window := "any time"
	if defaults.Window != nil {
		window = defaults.Window.String()
	}
	w.log.Info("watch mode on", "watch", defaults.Watch, "interval", defaults.Interval, "min_age", defaults.MinAge, "window", window,
		"parallel", w.cfg.WatchParallel)
	go wt.Run(ctx)
	return nil
}
