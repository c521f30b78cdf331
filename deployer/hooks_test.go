package deployer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/gate"
)

// hookProject is a service whose hooks append "<hook> <container hostname> <version>" to a log
// on a named volume the test reads back.
func hookProject(t *testing.T, tag, preStop, postStart string) *parityProject {
	t.Helper()
	return hookProjectOrder(t, tag, preStop, postStart, "stop-first")
}

// hookProjectOrder is hookProject with deploy.update_config.order set to order.
func hookProjectOrder(t *testing.T, tag, preStop, postStart, order string) *parityProject {
	t.Helper()
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	return newParityProject(t, eng, cli, map[string]string{"compose.yaml": `name: @PROJECT@
services:
  web:
    image: acme/web:` + tag + `
    init: true
    volumes: [marks:/marks]
    labels:
      berth.hook.pre-stop: '` + preStop + `'
      berth.hook.post-start: '` + postStart + `'
      berth.hook.timeout: 20s
    deploy:
      update_config:
        order: ` + order + `
volumes:
  marks: {}
`})
}

// mark is a hook command writing one line to the shared log.
func mark(hook string) string {
	return `echo "` + hook + ` $$(hostname) $$(cat /www/index.html)" >> /marks/log`
}

func TestHooksRunInTheRightContainersInOrder(t *testing.T) {
	eng := deployertest.Engine(t)
	for _, order := range []string{"stop-first", "start-first"} {
		t.Run(order, func(t *testing.T) {
			tag := deployertest.UniqueTag("hooks")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "v1")
			p := hookProjectOrder(t, tag, mark("pre-stop"), `["sh", "-c", "`+strings.ReplaceAll(mark("post-start"), `"`, `\"`)+`"]`, order)
			p.compose("up", "-d", "--quiet-pull") // compose itself runs no hook
			old := p.containers()[p.name+"-web-1"]
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "v2")

			recs := deployWith(t, p, eng, Options{}, "acme/web", tag)
			if len(recs) != 1 || recs[0].Outcome != OutcomeDeployed {
				t.Fatalf("records %+v, want one deployed", recs)
			}
			cur := p.containers()[p.name+"-web-1"]
			got := strings.TrimSpace(p.compose("exec", "-T", "web", "cat", "/marks/log"))
			pre, post := "pre-stop "+old.ID[:12]+" v1", "post-start "+cur.ID[:12]+" v2"
			// Stop-first stops the old container before the new one starts; start-first starts
			// and health-checks the new one first, and only then prepares the old one to stop.
			want := pre + "\n" + post
			steps := []string{"pull", "create", "pre-stop", "stop", "set-aside", "rename", "start", "post-start", "health", "remove"}
			if order == "start-first" {
				want = post + "\n" + pre
				steps = []string{"pull", "create", "start", "post-start", "health", "pre-stop", "stop", "remove", "rename"}
			}
			if got != want {
				t.Errorf("hook log:\n%s\nwant:\n%s", got, want)
			}
			if got := stepNames(recs[0]); !slices.Equal(got, steps) {
				t.Errorf("steps %v, want %v", got, steps)
			}
		})
	}
}

func TestFailingHooks(t *testing.T) {
	eng := deployertest.Engine(t)
	for _, tc := range []struct {
		name, preStop, postStart string
		wantOutcome, wantErr     string
		wantSteps                []string
	}{
		// The old container had been stopped and set aside: the rollback starts that very one again.
		{name: "post-start failure rolls back", preStop: "true", postStart: `echo "migration 42 failed" >&2; exit 4`,
			wantOutcome: OutcomeRolledBack, wantErr: "hook post-start exited with code 4; last output: | migration 42 failed",
			wantSteps: []string{"pull", "create", "pre-stop", "stop", "set-aside", "rename", "start", "post-start", "rollback", "retag"}},
		{name: "pre-stop failure stops nothing", preStop: `echo "still draining"; exit 75`, postStart: "true",
			wantOutcome: OutcomeFailed, wantErr: "hook pre-stop exited with code 75; last output: | still draining",
			wantSteps: []string{"pull", "create", "pre-stop", "rollback", "retag"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tag := deployertest.UniqueTag("hookfail")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "v1")
			p := hookProject(t, tag, tc.preStop, tc.postStart)
			p.compose("up", "-d", "--quiet-pull")
			old := p.containers()[p.name+"-web-1"]
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "v2")

			recs := deployWith(t, p, eng, Options{}, "acme/web", tag)
			if len(recs) != 1 || recs[0].Outcome != tc.wantOutcome || !strings.Contains(recs[0].Error, tc.wantErr) {
				t.Fatalf("records %+v, want outcome %s saying %q", recs, tc.wantOutcome, tc.wantErr)
			}
			if got := stepNames(recs[0]); !slices.Equal(got, tc.wantSteps) {
				t.Errorf("steps %v, want %v", got, tc.wantSteps)
			}
			after := p.containers()
			if len(after) != 1 {
				t.Errorf("containers after the failed deploy: %d, want 1 (no temporary container left)", len(after))
			}
			if cur := after[p.name+"-web-1"]; cur.ID != old.ID || !cur.State.Running {
				t.Errorf("after a failing hook %s runs %s (running %v), want the old container %s back and running",
					p.name+"-web-1", short(cur.ID), cur.State.Running, short(old.ID))
			}
			// Serving: the old container answers with the old version.
			if got := strings.TrimSpace(p.compose("exec", "-T", "web", "wget", "-qO-", "http://127.0.0.1/")); got != "v1" {
				t.Errorf("the service answers %q after the failed deploy, want v1 from the old container", got)
			}
		})
	}
}

// TestPolicies is what `berth check` shows: each service's gate and hooks, bad labels reported.
func TestPolicies(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(`name: shop
services:
  web:
    image: acme/web:1
    labels: {berth.hook.pre-stop: "nginx -s quit", berth.gate.url: "http://127.0.0.1:9/policy"}
  worker:
    image: acme/worker:1
  broken:
    image: acme/broken:1
    labels: {berth.hook.timeout: "soon"}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	d := New(context.Background(), nil, Options{Projects: []compose.Spec{{Dir: dir}}, Gate: gate.Config{Image: "scanner:1", Timeout: time.Minute}})
	got, err := d.Policies(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	by := map[string]ServicePolicy{}
	for _, p := range got {
		by[p.Service] = p
	}
	if w := by["web"]; w.Gate.URL == "" || w.Gate.Source != "label" || w.Hooks.PreStop != "nginx -s quit" || w.Problem != "" {
		t.Errorf("web: %+v", w)
	}
	if w := by["worker"]; w.Gate.Image != "scanner:1" || w.Gate.Source != "env" || w.Hooks.Any() {
		t.Errorf("worker: %+v", w)
	}
	if b := by["broken"]; !strings.Contains(b.Problem, "berth.hook.timeout") {
		t.Errorf("broken: %+v", b)
	}
}
