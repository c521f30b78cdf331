package deployer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestRedeployKeepsComposeFromRecreating checks the hash rule against each compose release on
// the engine: the release creates a service with a short bind mount (the case whose hash the
// releases write differently), berth redeploys it on a new push, and the release's own
// `up -d` then leaves berth's container alone. With COMPOSE_VERSION set, berth writes that
// release's hash and label whatever made the containers.
func TestRedeployKeepsComposeFromRecreating(t *testing.T) {
	eng := deployertest.Engine(t)
	tests := []struct {
		name             string
		createdBy        string // CLI that makes the project
		override         string // Options.ComposeVersion
		checkedBy, label string // CLI that must recreate nothing; version label berth must write
	}{
		{"v5", "v5.6.0", "", "v5.6.0", "5.6.0"},
		{"v2", "v2.40.3", "", "v2.40.3", "2.40.3"},
		{"v571", "v5.7.1", "", "v5.7.1", "5.7.1"},
		{"override", "v2.40.3", "5.6.0", "v5.6.0", "5.6.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			createdBy := deployertest.ComposeCLI(t, tt.createdBy)
			checkedBy := deployertest.ComposeCLI(t, tt.checkedBy)
			ctx := context.Background()
			tag := deployertest.UniqueTag("hash" + tt.name)
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "one")
			project := strings.ReplaceAll(tag, "-", "")
			dir := t.TempDir()
			if err := os.Mkdir(filepath.Join(dir, "site"), 0o755); err != nil {
				t.Fatal(err)
			}
			composeYAML := "name: " + project + "\nservices:\n  web:\n    image: acme/web:" + tag +
				"\n    init: true\n    volumes: [\"./site:/site:ro\"]\n"
			if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeYAML), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				deployertest.Compose(t, checkedBy, dir, "down", "-v", "-t", "1")
				_, _ = eng.ImageRemove(context.Background(), "acme/web:"+tag, client.ImageRemoveOptions{Force: true})
			})
			deployertest.Compose(t, createdBy, dir, "up", "-d")
			before := webContainer(t, eng, project)

			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "two")
			var mu sync.Mutex
			var records []Record
			d := New(ctx, eng, Options{
				Projects: []compose.Spec{{Dir: dir}}, Owners: []string{"acme"}, ComposeVersion: tt.override,
				OnRecord: func(r Record) { mu.Lock(); records = append(records, r); mu.Unlock() },
			})
			if _, err := d.Deploy(ctx, Request{Source: "test", Repository: "acme/web", Tag: tag}); err != nil {
				t.Fatal(err)
			}
			waitCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := d.Wait(waitCtx); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			if len(records) != 1 || records[0].Outcome != OutcomeDeployed {
				t.Fatalf("records = %+v, want one deployed", records)
			}
			mu.Unlock()
			deployed := webContainer(t, eng, project)
			if deployed.ID == before.ID {
				t.Fatal("berth did not recreate the container")
			}
			if got := deployed.Labels[compose.LabelVersion]; got != tt.label {
				t.Errorf("berth wrote version label %q, want %q", got, tt.label)
			}

			out := deployertest.Compose(t, checkedBy, dir, "up", "-d")
			if after := webContainer(t, eng, project); after.ID != deployed.ID {
				t.Errorf("docker compose %s recreated berth's container (hash %s, compose's now %s):\n%s",
					tt.checkedBy, deployed.Labels[compose.LabelConfigHash], after.Labels[compose.LabelConfigHash], out)
			}
		})
	}
}

// webContainer is the one container of the project's web service, with its labels.
func webContainer(t *testing.T, eng *client.Client, project string) struct {
	ID     string
	Labels map[string]string
} {
	t.Helper()
	f := client.Filters{}.Add("label", compose.LabelProject+"="+project, compose.LabelService+"=web")
	res, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 1 {
		t.Fatalf("project %s has %d web containers, want 1", project, len(res.Items))
	}
	return struct {
		ID     string
		Labels map[string]string
	}{res.Items[0].ID, res.Items[0].Labels}
}
