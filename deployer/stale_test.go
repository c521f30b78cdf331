package deployer

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/state"
)

// TestStalePush: only a push of the same repository and tag, pushed before the one the
// service last deployed and naming another digest, is stale.
func TestStalePush(t *testing.T) {
	at := time.Date(2026, 11, 20, 15, 0, 0, 0, time.UTC)
	deployed := state.DeployedPush{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:new", PushedAt: at}
	tests := []struct {
		name  string
		req   Request
		mod   func(*job)
		stale bool
	}{
		{"older push of another digest", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:old", PushedAt: at.Add(-time.Hour)}, nil, true},
		{"older push without a digest", Request{Repository: "ghcr.io/acme/web", Tag: "1", PushedAt: at.Add(-time.Hour)}, nil, true},
		{"older push of the running digest", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:new", PushedAt: at.Add(-time.Hour)}, nil, false},
		{"same push time", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:old", PushedAt: at}, nil, false},
		{"newer push", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:newer", PushedAt: at.Add(time.Hour)}, nil, false},
		{"no push time", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:old"}, nil, false},
		{"another tag", Request{Repository: "ghcr.io/acme/web", Tag: "2", Digest: "sha256:old", PushedAt: at.Add(-time.Hour)}, nil, false},
		{"another repository", Request{Repository: "ghcr.io/acme/api", Tag: "1", Digest: "sha256:old", PushedAt: at.Add(-time.Hour)}, nil, false},
		{"by hand", Request{Repository: "ghcr.io/acme/web", Tag: "1", Digest: "sha256:old", PushedAt: at.Add(-time.Hour)}, func(j *job) { j.manual = true }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pushes, _ := state.New("").DeployedPushes()
			if err := pushes.Set("shop/web", deployed); err != nil {
				t.Fatal(err)
			}
			d := &Deployer{deployed: pushes}
			ref, err := registry.ParseRef(tc.req.Repository + ":" + tc.req.Tag)
			if err != nil {
				t.Fatal(err)
			}
			j := job{req: tc.req, image: ref, projectName: "shop", service: "web"}
			if tc.mod != nil {
				tc.mod(&j)
			}
			if err := d.stale(j); (err != nil) != tc.stale {
				t.Errorf("stale: %v, want stale %v", err, tc.stale)
			}
		})
	}
}
