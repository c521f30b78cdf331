package compose

import (
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
)

func TestWithin(t *testing.T) {
	tests := []struct {
		path, dir string
		want      bool
	}{
		{"/srv/app", "/srv/app", true},
		{"/srv/app/site", "/srv/app", true},
		{"/srv/app/site", "/srv/app/", true},
		{"/srv/application", "/srv/app", false},
		{"/srv", "/srv/app", false},
	}
	for _, tt := range tests {
		if got := Within(tt.path, tt.dir); got != tt.want {
			t.Errorf("Within(%q, %q) = %t, want %t", tt.path, tt.dir, got, tt.want)
		}
	}
}

// toHostPaths moves what lies under the project directory to the host's path and leaves
// absolute paths elsewhere and named volumes alone.
func TestToHostPaths(t *testing.T) {
	web := types.ServiceConfig{Name: "web"}
	web.Volumes = []types.ServiceVolumeConfig{
		{Type: types.VolumeTypeBind, Source: "/project/site", Target: "/site"},
		{Type: types.VolumeTypeBind, Source: "/etc/ssl", Target: "/ssl"},
		{Type: types.VolumeTypeVolume, Source: "/project/data", Target: "/data"},
	}
	p := &types.Project{
		WorkingDir:   "/project",
		ComposeFiles: []string{"/project/compose.yaml"},
		Services:     types.Services{"web": web},
		Secrets:      types.Secrets{"token": {File: "/project/token"}},
		Configs:      types.Configs{"conf": {File: "/elsewhere/conf"}},
	}
	if err := toHostPaths(p, "/project", "/srv/app"); err != nil {
		t.Fatal(err)
	}
	vols := p.Services["web"].Volumes
	for what, c := range map[string]struct{ got, want string }{
		"working dir":  {p.WorkingDir, "/srv/app"},
		"compose file": {p.ComposeFiles[0], "/srv/app/compose.yaml"},
		"bind inside":  {vols[0].Source, "/srv/app/site"},
		"bind outside": {vols[1].Source, "/etc/ssl"},
		"volume":       {vols[2].Source, "/project/data"},
		"secret":       {p.Secrets["token"].File, "/srv/app/token"},
		"config":       {p.Configs["conf"].File, "/elsewhere/conf"},
	} {
		if c.got != c.want {
			t.Errorf("%s: %s, want %s", what, c.got, c.want)
		}
	}
	if err := toHostPaths(p, "/project", "relative/dir"); err == nil {
		t.Error("a relative host dir was accepted")
	}
}
