package deployer

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// rolloutProject is a compose project whose web service runs acme/web:<tag>, made by the CLI.
type rolloutProject struct {
	t    *testing.T
	eng  *client.Client
	cli  string
	dir  string
	name string
	tag  string
}

func newRolloutProject(t *testing.T, web string, extra string) *rolloutProject {
	t.Helper()
	return newRolloutProjectWith(t, "v5.6.0", web, extra)
}

// newRolloutProjectWith is newRolloutProject made by the compose CLI of version cli.
func newRolloutProjectWith(t *testing.T, cli, web string, extra string) *rolloutProject {
	t.Helper()
	eng := deployertest.Engine(t)
	cli = deployertest.ComposeCLI(t, cli)
	tag := deployertest.UniqueTag("rollout")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	name := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, name,
		fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n%s%s", tag, web, extra))
	p := &rolloutProject{t: t, eng: eng, cli: cli, dir: dir, name: name, tag: tag}
	deployertest.ComposeUp(t, cli, dir)
	return p
}

// deployer returns a Deployer for the project with quick health-check settings, and the
// records of every deploy it finishes.
func (p *rolloutProject) deployer(o Options) (*Deployer, func() []Record) {
	var mu sync.Mutex
	var recs []Record
	o.Projects = []compose.Spec{{Dir: p.dir}}
	o.Owners = []string{"acme"}
	o.HealthSettle = cmpOr(o.HealthSettle, time.Second)
	o.HealthTimeout = cmpOr(o.HealthTimeout, 20*time.Second)
	if o.StateDir == "" {
		o.StateDir = p.t.TempDir()
	}
	o.OnRecord = func(r Record) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(testLog{p.t}, nil))
	}
	d := New(context.Background(), p.eng, o)
	return d, func() []Record {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(recs)
	}
}

// testLog sends a deployer's log to the test's, shown when it fails or with -v.
type testLog struct{ t *testing.T }

func (l testLog) Write(b []byte) (int, error) {
	l.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func cmpOr(d, def time.Duration) time.Duration {
	if d == 0 {
		return def
	}
	return d
}

// deploy pushes nothing; it asks d to deploy the project's tag and waits for every deploy.
func (p *rolloutProject) deploy(d *Deployer, req Request) {
	p.t.Helper()
	req.Source, req.Repository, req.Tag = "test", "acme/web", p.tag
	if _, err := d.Deploy(context.Background(), req); err != nil {
		p.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := d.Wait(ctx); err != nil {
		p.t.Fatal(err)
	}
}

// web inspects the service's one container by its compose name.
func (p *rolloutProject) web() container.InspectResponse {
	p.t.Helper()
	res, err := p.eng.ContainerInspect(context.Background(), p.name+"-web-1", client.ContainerInspectOptions{})
	if err != nil {
		p.t.Fatal(err)
	}
	return res.Container
}

// body fetches what web answers on its published port.
func (p *rolloutProject) body() string {
	p.t.Helper()
	c := p.web()
	for port, b := range c.NetworkSettings.Ports {
		if port.Num() == 80 && len(b) > 0 {
			got, err := deployertest.Get("http://127.0.0.1:" + b[0].HostPort + "/")
			if err != nil {
				return "error: " + err.Error()
			}
			return got
		}
	}
	return "no port"
}

// leftovers lists the project's containers other than the final ones: temporary or set-aside
// containers, or more than one per service.
func (p *rolloutProject) leftovers() []string {
	p.t.Helper()
	res, err := p.eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", compose.LabelProject+"="+p.name)})
	if err != nil {
		p.t.Fatal(err)
	}
	var out []string
	seen := map[string]bool{}
	for _, c := range res.Items {
		key := c.Labels[compose.LabelService] + "/" + c.Labels[compose.LabelNumber]
		if temporary(c) || seen[key] {
			out = append(out, canonicalName(c))
		}
		seen[key] = true
	}
	return out
}

func stepNames(r Record) []string {
	var out []string
	for _, s := range r.Steps {
		out = append(out, s.Name)
	}
	return out
}

// TestRolloutRollsBackABrokenImage: a new image that exits at once, one whose healthcheck
// never passes, and one that crash-loops are each rolled back: the previous container (the
// very same one, so its labels and volumes are untouched) runs and serves again, the outcome
// says rolled-back with the reason, and no temporary container is left.
func TestRolloutRollsBackABrokenImage(t *testing.T) {
	tests := []struct {
		name    string
		web     string   // extra service lines
		extra   []string // Dockerfile lines of the broken version
		wantErr string
	}{
		{"exits at once", "", []string{`ENTRYPOINT ["sh", "-c", "exit 3"]`}, "exit code 3"},
		{"never healthy", "", []string{`HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false`}, "unhealthy"},
		{"crash loop", "    restart: always\n", []string{`ENTRYPOINT ["sh", "-c", "sleep 0.3; exit 4"]`}, "crash loop"},
		{"start-first, never healthy", "    deploy: {update_config: {order: start-first}}\n", []string{`HEALTHCHECK --interval=1s --timeout=1s --retries=2 CMD false`}, "unhealthy"},
		{"healthy too late", "    labels: {berth.health-timeout: 3s}\n", []string{`HEALTHCHECK --interval=30s --start-period=60s CMD true`}, "within 3s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newRolloutProject(t, tt.web, "")
			before := p.web()
			d, records := p.deployer(Options{})
			deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2", tt.extra...)
			p.deploy(d, Request{})

			recs := records()
			if len(recs) != 1 {
				t.Fatalf("%d records, want 1", len(recs))
			}
			r := recs[0]
			if r.Outcome != OutcomeRolledBack || !strings.Contains(r.Error, tt.wantErr) {
				t.Errorf("outcome %s, error %q; want %s naming %q", r.Outcome, r.Error, OutcomeRolledBack, tt.wantErr)
			}
			if !slices.Contains(stepNames(r), "health") || !slices.Contains(stepNames(r), "rollback") {
				t.Errorf("steps %v lack health and rollback", stepNames(r))
			}
			after := p.web()
			if after.ID != before.ID || !after.State.Running {
				t.Errorf("web is %s (running %v), want the previous container %s running", after.ID[:12], after.State.Running, before.ID[:12])
			}
			if got := p.body(); got != "version 1" {
				t.Errorf("web answers %q after the rollback, want version 1", got)
			}
			if l := p.leftovers(); len(l) > 0 {
				t.Errorf("containers left behind: %v", l)
			}
		})
	}
}

// TestRolloutDoesNotRetryAFailedImage: once a service rolled back from an image, the same
// image pushed again is skipped with the reason and nothing is touched, also after a restart;
// berth deploy by hand tries it anyway; a fixed image deploys.
func TestRolloutDoesNotRetryAFailedImage(t *testing.T) {
	p := newRolloutProject(t, "", "")
	state := t.TempDir()
	d, records := p.deployer(Options{StateDir: state})
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2", `ENTRYPOINT ["sh", "-c", "exit 3"]`)
	p.deploy(d, Request{})
	before := p.web()
	broken := records()[0]
	if broken.Outcome != OutcomeRolledBack {
		t.Fatalf("the broken image: %s, want rolled back", broken.Outcome)
	}
	statuses, err := d.Services(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if f := statuses[0].FailedImages; len(f) != 1 || f[0].ID == before.Image || !strings.Contains(f[0].Reason, "exit code 3") {
		t.Errorf("status lists failed images %+v, want the broken one with its reason", f)
	}

	p.deploy(d, Request{}) // the same push again
	restarted, restartedRecords := p.deployer(Options{StateDir: state})
	p.deploy(restarted, Request{})
	for _, r := range append(records()[1:], restartedRecords()...) {
		if r.Outcome != OutcomeSkipped || !strings.Contains(r.Error, "was rolled back on this service") || !strings.Contains(r.Error, "berth deploy") {
			t.Errorf("the failed image pushed again: %s %q, want skipped saying why and what to do", r.Outcome, r.Error)
		}
		if !slices.Equal(stepNames(r), []string{"pull", "retag"}) {
			t.Errorf("steps %v, want only the pull and the retag of the running image", stepNames(r))
		}
	}
	if after := p.web(); after.ID != before.ID || !after.State.Running {
		t.Error("web was touched by a skipped push")
	}

	if _, err := restarted.DeployService(context.Background(), "web", ""); err != nil {
		t.Fatal(err)
	}
	if err := restarted.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if recs := restartedRecords(); recs[len(recs)-1].Outcome != OutcomeRolledBack {
		t.Errorf("berth deploy of the failed image: %s, want it tried (and rolled back)", recs[len(recs)-1].Outcome)
	}

	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 3")
	p.deploy(restarted, Request{})
	if recs := restartedRecords(); recs[len(recs)-1].Outcome != OutcomeDeployed || p.body() != "version 3" {
		t.Errorf("a fixed image: %s, web answers %q; want deployed, version 3", recs[len(recs)-1].Outcome, p.body())
	}
}

// TestRolloutMissingImageTouchesNothing: a push whose manifest the registry does not have fails
// at the pull, before any container is touched.
func TestRolloutMissingImageTouchesNothing(t *testing.T) {
	p := newRolloutProject(t, "", "")
	before := p.web()
	d, records := p.deployer(Options{})
	p.deploy(d, Request{Digest: "sha256:" + strings.Repeat("0", 64)})
	recs := records()
	if len(recs) != 1 || recs[0].Outcome != OutcomeFailed || !slices.Equal(stepNames(recs[0]), []string{"pull"}) {
		t.Fatalf("records %+v, want one failed at the pull", recs)
	}
	if after := p.web(); after.ID != before.ID || !after.State.Running {
		t.Error("web was touched")
	}
	if got := p.body(); got != "version 1" {
		t.Errorf("web answers %q, want version 1", got)
	}
}

// TestRolloutRedeliveryChangesNothing: the same push delivered twice recreates once; the second
// deploy finds the pulled image and config already running and records up-to-date.
func TestRolloutRedeliveryChangesNothing(t *testing.T) {
	p := newRolloutProject(t, "", "")
	d, records := p.deployer(Options{})
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2")
	p.deploy(d, Request{})
	first := p.web()
	p.deploy(d, Request{})
	recs := records()
	if len(recs) != 2 || recs[0].Outcome != OutcomeDeployed || recs[1].Outcome != OutcomeUpToDate {
		t.Fatalf("outcomes %v, want deployed then up-to-date", outcomes(recs))
	}
	if !slices.Equal(stepNames(recs[1]), []string{"pull"}) {
		t.Errorf("redelivery steps %v, want only the pull", stepNames(recs[1]))
	}
	if p.web().ID != first.ID {
		t.Error("the redelivery recreated web")
	}
	want := []string{"pull", "create", "stop", "set-aside", "rename", "start", "health", "remove"}
	if !slices.Equal(stepNames(recs[0]), want) {
		t.Errorf("steps %v, want %v", stepNames(recs[0]), want)
	}
}

func outcomes(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.Outcome)
	}
	return out
}

// TestStartFirstProblem: start-first is refused, with the reason, where two containers of one
// replica would collide.
func TestStartFirstProblem(t *testing.T) {
	tests := []struct{ service, want string }{
		{"image: acme/web:1", ""},
		{"image: acme/web:1\n    deploy: {update_config: {order: start-first}}\n    ports: [\"127.0.0.1::80\"]", ""},
		{"image: acme/web:1\n    deploy: {update_config: {order: start-first}}\n    ports: [\"8080:80\"]", "fixed host port 8080"},
		{"image: acme/web:1\n    deploy: {update_config: {order: start-first}}\n    container_name: web", "container_name web"},
		{"image: acme/web:1\n    container_name: web", ""},
	}
	for _, tt := range tests {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("services:\n  web:\n    "+tt.service+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p, err := compose.Load(context.Background(), compose.Spec{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		got := StartFirstProblem(p.Services["web"])
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.service, got, tt.want)
		}
	}
}

// TestRolloutCleanupKeepsWhatIsNeeded: with KEEP_IMAGES=1, after five versions the newest
// replaced image stays, an image with another tag and one a container uses stay, and only the
// image nothing needs is removed.
func TestRolloutCleanupKeepsWhatIsNeeded(t *testing.T) {
	p := newRolloutProject(t, "", "")
	ctx := context.Background()
	d, records := p.deployer(Options{KeepImages: 1})
	ids := []string{p.web().Image}
	for v := 2; v <= 5; v++ {
		// The tag in the body keeps the image to this test: the build cache would hand the
		// same image (with other tests' tags) to every test that builds the same body.
		deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, fmt.Sprintf("version %d of %s", v, p.tag))
		p.deploy(d, Request{})
		ids = append(ids, p.web().Image)
		switch v {
		case 2:
			// version 1 gets a user of its own: a container made from it.
			res, err := p.eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: p.name + "-user", Config: &container.Config{Image: ids[0]}})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = p.eng.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true}) })
			// version 2 gets another tag.
			if _, err := p.eng.ImageTag(ctx, client.ImageTagOptions{Source: ids[1], Target: "acme/other:" + p.tag}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = p.eng.ImageRemove(ctx, "acme/other:"+p.tag, client.ImageRemoveOptions{}) })
		}
	}
	for _, r := range records() {
		if r.Outcome != OutcomeDeployed {
			t.Fatalf("outcomes %v", outcomes(records()))
		}
	}
	exists := func(id string) bool {
		_, err := p.eng.ImageInspect(ctx, id)
		return err == nil
	}
	for i, want := range []bool{true, true, false, true, true} {
		if got := exists(ids[i]); got != want {
			t.Errorf("version %d image present = %v, want %v", i+1, got, want)
		}
	}
}

// TestRolloutOneShotServiceMayExit: a service whose container had exited (a one-shot job)
// passes the health check when its new container exits 0, and is not rolled back.
func TestRolloutOneShotServiceMayExit(t *testing.T) {
	p := newRolloutProject(t, "    command: [\"true\"]\n", "")
	deployertest.Eventually(t, "the job to exit", 30*time.Second, func() bool { return !p.web().State.Running })
	d, records := p.deployer(Options{})
	deployertest.PushHTTPImage(t, p.eng, "acme/web", p.tag, "version 2 of "+p.tag)
	p.deploy(d, Request{})
	if recs := records(); len(recs) != 1 || recs[0].Outcome != OutcomeDeployed {
		t.Fatalf("outcomes %v, want deployed", outcomes(recs))
	}
	if c := p.web(); c.State.ExitCode != 0 || c.Config.Labels[compose.LabelImage] != c.Image {
		t.Errorf("job exit code %d, image label %s, image %s", c.State.ExitCode, c.Config.Labels[compose.LabelImage], c.Image)
	}
}

// temporary says whether a container carries one of the names berth gives containers only
// while a deploy runs (tmp or backup).
func temporary(c container.Summary) bool {
	n := canonicalName(c)
	return strings.HasPrefix(n, backupPrefix) || (len(n) > 13 && n[12] == '_' && isHex(n[:12]))
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}
