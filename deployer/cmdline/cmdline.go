// Package cmdline reads the commands berth runs inside containers (pre-deploy gates, lifecycle
// hooks) and trims what they print, so both follow one rule. It imports nothing of berth.
package cmdline

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Parse reads a hook or gate command: a JSON array is the exec form, anything else a
// shell string run with sh -c. Empty is nil.
func Parse(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	if strings.HasPrefix(s, "[") {
		var argv []string
		if err := json.Unmarshal([]byte(s), &argv); err != nil || len(argv) == 0 {
			return nil, fmt.Errorf("%q starts with [ but is not a non-empty JSON array of strings", s)
		}
		return argv, nil
	}
	return []string{"sh", "-c", s}, nil
}

// LastLines keeps the last n non-empty lines of b, each cut to a readable length.
func LastLines(b []byte, n int) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		l = strings.TrimRight(l, "\r")
		if l == "" {
			continue
		}
		if len(l) > 512 {
			l = l[:512] + "…"
		}
		out = append(out, l)
	}
	if len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}
