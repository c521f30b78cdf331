package watch

import (
	"fmt"
	"strings"
	"time"
)

// Window is a weekly maintenance window, like "Mon-Fri 02:00-04:00 Europe/Berlin": the days it
// opens on, its wall-clock start and end in a time zone (UTC when none is named). An end
// before the start runs past midnight into the next day.
type Window struct {
	text       string
	days       [7]bool // by time.Weekday: the days the window opens on
	start, end int     // minutes after local midnight
	loc        *time.Location
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// ParseWindow parses "DAYS HH:MM-HH:MM [TIME ZONE]", DAYS being * (every day), a day (Mon),
// a range (Mon-Fri, Fri-Mon) or a list of those (Sat,Sun).
func ParseWindow(s string) (*Window, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return nil, fmt.Errorf("window %q is not like \"Mon-Fri 02:00-04:00 Europe/Berlin\" (days, hours, optional time zone)", s)
	}
	w := &Window{text: strings.Join(f, " "), loc: time.UTC}
	if err := w.parseDays(f[0]); err != nil {
		return nil, fmt.Errorf("window %q: %w", s, err)
	}
	from, to, ok := strings.Cut(f[1], "-")
	var err1, err2 error
	w.start, err1 = clock(from)
	w.end, err2 = clock(to)
	if !ok || err1 != nil || err2 != nil {
		return nil, fmt.Errorf("window %q: hours %q are not like 02:00-04:00", s, f[1])
	}
	if w.start == w.end {
		return nil, fmt.Errorf("window %q: it starts and ends at the same time", s)
	}
	if len(f) == 3 {
		loc, err := time.LoadLocation(f[2])
		if err != nil {
			return nil, fmt.Errorf("window %q: unknown time zone %q (an IANA name like Europe/Berlin): %w", s, f[2], err)
		}
		w.loc = loc
	}
	return w, nil
}

func (w *Window) parseDays(s string) error {
	if s == "*" {
		w.days = [7]bool{true, true, true, true, true, true, true}
		return nil
	}
	for part := range strings.SplitSeq(s, ",") {
		from, to, isRange := strings.Cut(strings.ToLower(part), "-")
		if !isRange {
			to = from
		}
		a, ok1 := weekdays[from]
		b, ok2 := weekdays[to]
		if !ok1 || !ok2 {
			return fmt.Errorf("days %q are not like Mon-Fri, Sat,Sun or *", s)
		}
		for d := a; ; d = (d + 1) % 7 {
			w.days[d] = true
			if d == b {
				break
			}
		}
	}
	return nil
}

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, err
	}
	return t.Hour()*60 + t.Minute(), nil
}

// String is the window as written.
func (w *Window) String() string { return w.text }

// Contains says whether t falls inside the window, judged by the wall clock of its time zone.
func (w *Window) Contains(t time.Time) bool {
	t = t.In(w.loc)
	m := t.Hour()*60 + t.Minute()
	day := t.Weekday()
	if w.start < w.end {
		return w.days[day] && m >= w.start && m < w.end
	}
	// Past midnight: the evening part belongs to today, the morning part to yesterday's window.
	return (w.days[day] && m >= w.start) || (w.days[(day+6)%7] && m < w.end)
}

// Next is the first time at or after t when the window is open.
func (w *Window) Next(t time.Time) time.Time {
	if w.Contains(t) {
		return t
	}
	local := t.In(w.loc)
	for i := range 8 {
		y, mo, d := local.Date()
		open := time.Date(y, mo, d+i, w.start/60, w.start%60, 0, 0, w.loc)
		// A start the clocks skip (a DST change) opens when the wall clock gets past it.
		if open.After(t) && w.Contains(open) {
			return open
		}
	}
	return t // unreachable for a window that opens on some day
}
