package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// StateDirNone is the STATE_DIR value that keeps everything in memory on purpose.
const StateDirNone = "none"

// stateDirCandidates are where STATE_DIR defaults to, first writable wins: the XDG state
// directory when set, the system's state folder (writable when berth runs as root, as in its
// image), then the user's XDG default.
func stateDirCandidates(getenv func(string) string) []string {
	var out []string
	if x := getenv("XDG_STATE_HOME"); x != "" {
		return append(out, filepath.Join(x, "berth"))
	}
	out = append(out, "/var/lib/berth")
	if h := getenv("HOME"); h != "" {
		out = append(out, filepath.Join(h, ".local", "state", "berth"))
	}
	return out
}

// resolveStateDir fills in STATE_DIR: as set, "" for StateDirNone, or else the first
// writable default (StateDirDefaulted), "" when none is.
func (c *Config) resolveStateDir(getenv func(string) string) {
	switch c.StateDir {
	case StateDirNone:
		c.StateDir = ""
		return
	case "":
	default:
		return
	}
	c.StateDirTried = stateDirCandidates(getenv)
	for _, dir := range c.StateDirTried {
		if writable(dir) {
			c.StateDir, c.StateDirDefaulted = dir, true
			return
		}
	}
}

// writable says whether berth could create dir and write in it, without creating anything
// (loading the configuration changes nothing): dir, or its nearest existing ancestor, is a
// directory this process may write to.
func writable(dir string) bool {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err == nil {
			return fi.IsDir() && syscall.Access(p, 0x2|0x1) == nil // W_OK|X_OK
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return false
		}
	}
}
