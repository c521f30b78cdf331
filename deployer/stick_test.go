package deployer

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/gate"
)

// brokenImage is the Dockerfile line of a version whose container exits at once.
var brokenImage = []string{`ENTRYPOINT ["sh", "-c", "exit 3"]`}

// TestComposeUpChangesNothingAfterEveryOutcome: whatever a deploy ends with, the image reference
// the service names resolves to the image its container runs, so a routine `docker compose up -d`
// (no pull) with either compose release recreates nothing and the service answers on the
// version berth left running; an image berth rolled back from stays on the engine, listed failed.
func TestComposeUpChangesNothingAfterEveryOutcome(t *testing.T) {
	push := func(p *rolloutProject, body string, extra ...string) {
		deployertest.PushHTTPImage(p.t, p.eng, "acme/web", p.tag, body, extra...)
	}
	pinned := func(p *rolloutProject) Request {
		return Request{Digest: deployertest.ManifestDigest(p.t, deployertest.Registry(), "acme/web", p.tag)}
	}
	cases := []struct {
		name    string
		web     string // extra lines of the web service
		opts    Options
		run     func(p *rolloutProject, d *Deployer) // pushes and deploys
		outcome string                               // of the last deploy
		body    string                               // what web answers afterwards
		failed  bool                                 // the last pushed image is listed failed
	}{
		{name: "health rollback", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2", brokenImage...)
			p.deploy(d, Request{})
		}, outcome: OutcomeRolledBack, body: "version 1", failed: true},
		{name: "post-start hook rollback", web: "    labels: {berth.hook.post-start: 'exit 4'}\n", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, Request{})
		}, outcome: OutcomeRolledBack, body: "version 1", failed: true},
		{name: "start-first abort", web: "    deploy: {update_config: {order: start-first}}\n", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2", `HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false`)
			p.deploy(d, Request{})
		}, outcome: OutcomeRolledBack, body: "version 1", failed: true},
		{name: "deployed", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, Request{})
		}, outcome: OutcomeDeployed, body: "version 2"},
		{name: "skipped, the failed image pushed again", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2", brokenImage...)
			p.deploy(d, Request{})
			p.deploy(d, Request{})
		}, outcome: OutcomeSkipped, body: "version 1", failed: true},
		{name: "up-to-date redelivery", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, Request{})
			p.deploy(d, Request{})
		}, outcome: OutcomeUpToDate, body: "version 2"},
		{name: "dry run", opts: Options{DryRun: true}, run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, Request{})
		}, outcome: OutcomeWouldDeploy, body: "version 1"},
		{name: "gate veto", opts: Options{Gate: gate.Config{Image: "busybox:1", Command: "exit 3"}}, run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, Request{})
		}, outcome: OutcomeRejected, body: "version 1"},
		{name: "previous image known only by digest", run: func(p *rolloutProject, d *Deployer) {
			push(p, "version 2")
			p.deploy(d, pinned(p))
			// The running version loses its tag; the next push moves the registry's tag away too.
			if _, err := p.eng.ImageRemove(context.Background(), "acme/web:"+p.tag, client.ImageRemoveOptions{}); err != nil {
				p.t.Fatal(err)
			}
			push(p, "version 3", brokenImage...)
			p.deploy(d, pinned(p))
		}, outcome: OutcomeRolledBack, body: "version 2", failed: true},
	}
	for _, cli := range []string{"v5.6.0", "v2.40.3"} {
		for _, tc := range cases {
			t.Run(cli+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				p := newRolloutProjectWith(t, cli, tc.web, "")
				d, records := p.deployer(tc.opts)
				tc.run(p, d)
				recs := records()
				if last := recs[len(recs)-1]; last.Outcome != tc.outcome {
					t.Fatalf("outcomes %v (last error %q), want the last %s", outcomes(recs), last.Error, tc.outcome)
				}
				p.requireReferenceNamesRunningImage()
				if tc.failed {
					p.requireFailedImageKept(d)
				}
				p.upChangesNothing(tc.body)
			})
		}
	}
}

// requireReferenceNamesRunningImage fails unless the service's image reference resolves locally
// to the image web runs: what compose compares before it recreates.
func (p *rolloutProject) requireReferenceNamesRunningImage() {
	p.t.Helper()
	ref := "acme/web:" + p.tag
	img, err := p.eng.ImageInspect(context.Background(), ref)
	if err != nil {
		p.t.Fatalf("inspect %s: %v", ref, err)
	}
	if running := p.web().Image; img.ID != running {
		p.t.Errorf("%s names %s, web runs %s", ref, shortImageID(img.ID), shortImageID(running))
	}
}

// requireFailedImageKept fails unless the service lists exactly one failed image, other than
// the running one, and the engine still has it by ID.
func (p *rolloutProject) requireFailedImageKept(d *Deployer) {
	p.t.Helper()
	failed := d.FailedImages(p.name + "/web")
	if len(failed) != 1 || failed[0].ID == p.web().Image {
		p.t.Fatalf("failed images %+v, want one, not the running image", failed)
	}
	if _, err := p.eng.ImageInspect(context.Background(), failed[0].ID); err != nil {
		p.t.Errorf("the image berth rolled back from is gone: %v", err)
	}
}

// upChangesNothing runs the project's compose CLI's `up -d` (no pull) and fails unless every
// container stays as it was and web answers body.
func (p *rolloutProject) upChangesNothing(body string) {
	p.t.Helper()
	ids := func() []string {
		var out []string
		for name, state := range projectStates(p.t, p.eng, p.name) {
			out = append(out, name+"="+state)
		}
		slices.Sort(out)
		return out
	}
	before := ids()
	out := deployertest.Compose(p.t, p.cli, p.dir, "up", "-d")
	if after := ids(); !slices.Equal(before, after) {
		p.t.Errorf("compose up -d changed the containers: %v, then %v\n%s", before, after, out)
	}
	if got := p.body(); got != body {
		p.t.Errorf("web answers %q after compose up -d, want %q", got, body)
	}
}

// projectStates lists project's containers as id/name: state.
func projectStates(t *testing.T, eng *client.Client, project string) map[string]string {
	t.Helper()
	res, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+project)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range res.Items {
		out[c.ID[:12]+"/"+canonicalName(c)] = string(c.State)
	}
	return out
}

// TestSharedReferenceStaysWithTheDeployedService: two services name the same image; the push
// deploys one and rolls the other back (its post-start hook fails). Re-tagging would undo the
// deploy that succeeded, so the reference keeps naming the pulled image and the rolled-back
// service's record says, in its retag step, why compose would recreate it.
func TestSharedReferenceStaysWithTheDeployedService(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("shared")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	name := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, name, fmt.Sprintf("services:\n  web:\n    image: acme/web:%[1]s\n    init: true\n"+
		"  worker:\n    image: acme/web:%[1]s\n    init: true\n    labels: {berth.hook.post-start: 'exit 4'}\n", tag))
	deployertest.ComposeUp(t, cli, dir)
	p := &rolloutProject{t: t, eng: eng, cli: cli, dir: dir, name: name, tag: tag}
	d, records := p.deployer(Options{})
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	p.deploy(d, Request{})

	byService := map[string]Record{}
	for _, r := range records() {
		byService[r.Service] = r
	}
	if byService["web"].Outcome != OutcomeDeployed || byService["worker"].Outcome != OutcomeRolledBack {
		t.Fatalf("outcomes %v, want web deployed and worker rolled back", outcomes(records()))
	}
	p.requireReferenceNamesRunningImage()
	steps := byService["worker"].Steps
	if last := steps[len(steps)-1]; last.Name != "retag" || !strings.Contains(last.Error, "also the image of "+name+"/web") {
		t.Errorf("worker's last step %+v, want a retag saying the reference is shared with web", last)
	}
}
