package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestMisconfigurationStopsAtStart runs `berth serve` with each misconfiguration a first run
// meets: it exits non-zero, before listening, with one line naming the fix.
func TestMisconfigurationStopsAtStart(t *testing.T) {
	bin := buildBerth(t)
	broken := deployertest.WriteProject(t, "startupbroken", "services: [not, a, map\n")
	missingVar := deployertest.WriteProject(t, "startupvar", "services:\n  web:\n    image: acme/web:${TAG:?set TAG in .env}\n")
	for _, c := range []struct {
		name string
		env  map[string]string
		want string
	}{
		{"OWNER unset", map[string]string{"OWNER": ""}, "berth: OWNER is not set; set it to the registry namespace(s)"},
		{"OWNER trailing comma", map[string]string{"OWNER": "acme,"}, "OWNER=acme, has an empty entry"},
		{"OWNER with slash", map[string]string{"OWNER": "acme/web"}, "contains a slash"},
		{"OWNER uppercase", map[string]string{"OWNER": "Acme"}, "is not a registry namespace"},
		{"PROJECT_DIR missing", map[string]string{"PROJECT_DIR": "/nonexistent"}, "PROJECT_DIR=/nonexistent does not exist as berth sees it"},
		{"project does not parse", map[string]string{"PROJECT_DIR": broken}, "does not load"},
		{"project misses a variable", map[string]string{"PROJECT_DIR": missingVar}, "required variable TAG is missing a value: set TAG in .env"},
	} {
		env := []string{"OWNER=acme", "SECRET=" + testSecret, "LISTEN_ADDR=127.0.0.1:0", "STATE_DIR=" + t.TempDir(),
			"DOCKER_HOST=" + os.Getenv("DOCKER_HOST"), "DOCKER_CONFIG=" + filepath.Join(t.TempDir(), "none")}
		for k, v := range c.env {
			env = append(env, k+"="+v)
		}
		code, _, stderr := runBounded(t, bin, env, "serve")
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		last := lines[len(lines)-1]
		if code == 0 || !strings.HasPrefix(last, "berth: ") || !strings.Contains(last, c.want) || strings.Contains(stderr, "listening") {
			t.Errorf("%s: exit %d, stderr:\n%s\nwant non-zero, no listening, and a last line with %q", c.name, code, stderr, c.want)
		}
	}
}
