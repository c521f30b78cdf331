package deployer

import (
	"context"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/watch"
)

// TestWatchSwarmService: a stack service whose spec is labelled berth.watch=true (a stack
// file's deploy.labels) is updated by the swarm to the digest its tag names once a new one is
// pushed, with no webhook, and the record says watch mode deployed it.
func TestWatchSwarmService(t *testing.T) {
	c, reg := deployertest.SwarmEngine(t)
	deployertest.SingleNodeSwarm(t, c)
	ctx := context.Background()
	repo, tag := "acme/swarmwatch", deployertest.UniqueTag("sww")
	stack := strings.ReplaceAll(deployertest.UniqueTag("stw"), "-", "")
	deployertest.PushImageTo(t, c, reg, repo, tag, deployertest.HealthyHTTPDockerfile("v1"))
	d1 := deployertest.ManifestDigest(t, reg, repo, tag)
	id := deployertest.StackWebService(t, c, stack, reg+"/"+repo+":"+tag+"@"+d1)
	labelService(t, c, id, map[string]string{watch.LabelWatch: "true", watch.LabelInterval: "1s"})

	rec := &recorder{}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := New(runCtx, c, Options{Owners: []string{"acme"}, OnRecord: rec.add, SwarmTimeout: time.Minute, StateDir: t.TempDir(),
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	w, err := d.NewWatcher(WatchOptions{Tick: 100 * time.Millisecond, Refresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	go w.Run(runCtx)
	key := stack + "/web"
	deployertest.Eventually(t, "the first check", 20*time.Second, func() bool { return w.Status()[key].Running == d1 })

	deployertest.PushImageTo(t, c, reg, repo, tag, deployertest.HealthyHTTPDockerfile("v2"))
	d2 := deployertest.ManifestDigest(t, reg, repo, tag)
	deployertest.Eventually(t, "the watched update", 60*time.Second, func() bool {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return len(rec.recs) > 0
	})
	_ = d.Wait(ctx)
	if r := rec.last(t); r.Outcome != OutcomeDeployed || r.Source != "watch" || r.Digest != d2 || r.Project != stack || r.Service != "web" {
		t.Fatalf("record %+v, want %s/web deployed by watch at %s", r, stack, d2)
	}
	res, err := c.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ref, err := registry.ParseRef(res.Service.Spec.TaskTemplate.ContainerSpec.Image); err != nil || ref.Digest != d2 || ref.Tag != tag {
		t.Fatalf("service image %q, want %s:%s pinned to %s", res.Service.Spec.TaskTemplate.ContainerSpec.Image, repo, tag, d2)
	}
	if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "v2") {
		t.Fatalf("tasks answer %q, want both v2", b)
	}
}

// labelService adds labels to service id's spec, as a stack file's deploy.labels would. The
// swarm may bump a new service's version under us ("update out of sequence"): read it again.
func labelService(t *testing.T, c *client.Client, id string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	var err error
	for range 20 {
		res, ierr := c.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
		if ierr != nil {
			t.Fatal(ierr)
		}
		spec := res.Service.Spec
		maps.Copy(spec.Labels, labels)
		if _, err = c.ServiceUpdate(ctx, id, client.ServiceUpdateOptions{Version: res.Service.Version, Spec: spec}); err == nil || !strings.Contains(err.Error(), "out of sequence") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("label service: %v", err)
	}
}
