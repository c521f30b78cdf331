// Package watch is the knowledge of watch mode: which services berth watches and how (labels
// and defaults), when each is checked (schedule, jitter, backoff), how a tag's current digest
// is read from its registry (a manifest HEAD, never a pull) and whether a new digest may deploy
// now (minimum age, maintenance window, approval). It makes no engine calls.
package watch

import (
	"fmt"
	"strings"
	"time"
)

// Labels a compose service sets to choose how it is watched.
const (
	LabelWatch         = "berth.watch"          // true, notify or false
	LabelInterval      = "berth.watch.interval" // a Go duration, e.g. 6h
	LabelMinAge        = "berth.min-age"        // a Go duration: how long a new digest must stay unchanged
	LabelApprove       = "berth.approve"        // manual: held until approved
	LabelWindow        = "berth.window"         // maintenance window, e.g. "Mon-Fri 02:00-04:00 Europe/Berlin"
	LabelWindowWebhook = "berth.window.webhook" // true: webhook pushes wait for the window too
)

// Modes of a watched service.
const (
	ModeOff    = ""       // not watched
	ModeDeploy = "deploy" // a new digest is deployed
	ModeNotify = "notify" // a new digest is reported, never deployed
)

// Values of WATCH, which services are watched without a label.
const (
	WatchLabelled = "labelled" // only services labelled berth.watch=true or notify (the default)
	WatchAll      = "all"      // every service berth serves, unless labelled berth.watch=false
	WatchOff      = "off"      // none, whatever the labels say
)

// MinInterval is the shortest check interval berth accepts: a registry is not a busy loop.
const MinInterval = time.Second

// Defaults are the global settings (WATCH, WATCH_INTERVAL, WATCH_MIN_AGE, WATCH_WINDOW) a
// service's labels override.
type Defaults struct {
	Watch    string        // WatchLabelled (""), WatchAll or WatchOff
	Interval time.Duration // default 6h
	MinAge   time.Duration
	Window   *Window // nil = any time
}

// DefaultInterval is how often a watched service is checked when neither label nor WATCH_INTERVAL says.
const DefaultInterval = 6 * time.Hour

// Policy is how one service is watched.
type Policy struct {
	Mode          string
	Interval      time.Duration
	MinAge        time.Duration
	Manual        bool    // berth.approve=manual
	Window        *Window // nil = any time
	WindowWebhook bool    // webhook pushes wait for the window too
	NewerTags     bool    // notify-only with berth.tag-policy=semver: newer tags are reported too
}

// ParsePolicy reads a service's watch labels over d; a label with a bad value is an error
// naming the label and what it accepts, and the service is then not watched.
func ParsePolicy(labels map[string]string, d Defaults) (Policy, error) {
	p := Policy{Interval: d.Interval, MinAge: d.MinAge, Window: d.Window}
	if p.Interval == 0 {
		p.Interval = DefaultInterval
	}
	switch v := strings.TrimSpace(labels[LabelWatch]); v {
	case "true":
		p.Mode = ModeDeploy
	case "notify":
		p.Mode = ModeNotify
	case "false":
	case "":
		if d.Watch == WatchAll {
			p.Mode = ModeDeploy
		}
	default:
		return Policy{}, fmt.Errorf("label %s=%q is none of true, notify or false", LabelWatch, v)
	}
	if d.Watch == WatchOff {
		p.Mode = ModeOff
	}
	p.NewerTags = p.Mode == ModeNotify && labels[LabelTagPolicy] == TagPolicySemver
	var err error
	if p.Interval, err = durationLabel(labels, LabelInterval, p.Interval); err != nil {
		return Policy{}, err
	}
	if p.Interval < MinInterval {
		return Policy{}, fmt.Errorf("label %s=%s is shorter than %s", LabelInterval, p.Interval, MinInterval)
	}
	if p.MinAge, err = durationLabel(labels, LabelMinAge, p.MinAge); err != nil {
		return Policy{}, err
	}
	switch v := labels[LabelApprove]; v {
	case "manual":
		p.Manual = true
	case "", "auto":
	default:
		return Policy{}, fmt.Errorf("label %s=%q is neither manual nor auto", LabelApprove, v)
	}
	if v, ok := labels[LabelWindow]; ok {
		if p.Window, err = ParseWindow(v); err != nil {
			return Policy{}, fmt.Errorf("label %s: %w", LabelWindow, err)
		}
	}
	switch v := labels[LabelWindowWebhook]; v {
	case "true":
		p.WindowWebhook = true
	case "", "false":
	default:
		return Policy{}, fmt.Errorf("label %s=%q is neither true nor false", LabelWindowWebhook, v)
	}
	return p, nil
}

func durationLabel(labels map[string]string, key string, def time.Duration) (time.Duration, error) {
	v, ok := labels[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < 0 {
		return 0, fmt.Errorf("label %s=%q is not a duration like 30m or 72h", key, v)
	}
	return d, nil
}
