package compose

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer/fault"
)

// TestCheckSupportedRefusesWhatBerthCannotReproduce: a service with an attribute berth would
// drop is refused with an error naming the attribute and the reason, before anything changes.
func TestCheckSupportedRefusesWhatBerthCannotReproduce(t *testing.T) {
	tests := []struct {
		name, service, top string
		want               []string // substrings of the error; none means supported
	}{
		{"plain", "image: acme/web:1", "", nil},
		{"many supported", "image: acme/web:1\n    network_mode: service:db\n    ipc: host\n    devices: [/dev/null]\n    cpu_shares: 2\n    secrets: [s]", "secrets: {s: {file: ./s}}", nil},
		{"build", "build: .", "", []string{"build section"}},
		{"links", "image: acme/web:1\n    links: [db]", "", []string{"links (legacy links"}},
		{"gpus", "image: acme/web:1\n    gpus: all", "", []string{"gpus"}},
		{"hooks", "image: acme/web:1\n    post_start: [{command: [\"true\"]}]", "", []string{"post_start (lifecycle hooks"}},
		{"env secret", "image: acme/web:1\n    secrets: [s]", "secrets: {s: {environment: TOKEN}}", []string{"secrets.s (only file-based"}},
		{"content config", "image: acme/web:1\n    configs: [c]", "configs: {c: {content: hi}}", []string{"configs.c (only file-based"}},
		{"mac per network", "image: acme/web:1\n    networks: {default: {mac_address: \"02:42:ac:11:00:02\"}}", "", []string{"networks.default.mac_address"}},
		{"placement", "image: acme/web:1\n    deploy: {placement: {constraints: [node.role==manager]}}", "", []string{"deploy.placement"}},
		{"device reservation", "image: acme/web:1\n    deploy: {resources: {reservations: {devices: [{capabilities: [gpu]}]}}}", "", []string{"reservations.devices"}},
		{"two at once", "image: acme/web:1\n    links: [db]\n    platform: linux/arm64", "", []string{"links", "platform"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			compose := "services:\n  web:\n    " + tt.service + "\n  db:\n    image: busybox:1\n" + tt.top + "\n"
			if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(compose), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = os.WriteFile(filepath.Join(dir, "s"), []byte("x"), 0o644)
			p, err := Load(context.Background(), Spec{Dir: dir, Environ: []string{"TOKEN=x"}})
			if err != nil {
				t.Fatal(err)
			}
			err = CheckSupported(p, p.Services["web"])
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error naming %v", tt.want)
			}
			if fault.KindOf(err) != fault.Invalid {
				t.Errorf("error %v is not fault.Invalid", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), "nothing was changed") && tt.name != "build" {
				t.Errorf("error %q does not say nothing was changed", err)
			}
		})
	}
}
