package deployer

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// testSwarmLabel marks a swarm these tests created, so a run that died halfway may replace it
// while a swarm somebody else made is never left.
const testSwarmLabel = "dev.berth.test-swarm"

// singleNodeSwarm makes the private swarm engine a single-node swarm for the test, as
// `docker swarm init --advertise-addr 127.0.0.1` would, and leaves it at the end.
func singleNodeSwarm(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		sw, err := c.SwarmInspect(ctx, client.SwarmInspectOptions{})
		if err != nil || sw.Swarm.Spec.Labels[testSwarmLabel] == "" {
			t.Fatalf("the engine at BERTH_SWARM_DOCKER_HOST is already in a swarm this test did not create (%v); give the swarm tests an engine of their own", err)
		}
		if _, err := c.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Fatalf("leave the swarm an earlier run left: %v", err)
		}
	}
	spec := swarm.Spec{Annotations: swarm.Annotations{Labels: map[string]string{testSwarmLabel: "1"}}}
	if _, err := c.SwarmInit(ctx, client.SwarmInitOptions{ListenAddr: "127.0.0.1:2377", AdvertiseAddr: "127.0.0.1", Spec: spec}); err != nil {
		t.Fatalf("swarm init: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.SwarmLeave(context.Background(), client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Errorf("swarm leave: %v", err)
		}
	})
}

// httpDockerfile is a busybox HTTP server answering body, healthy once it answers.
func httpDockerfile(body string) string {
	return "FROM busybox:1\n" +
		"RUN mkdir -p /www && printf '%s' '" + body + "' > /www/index.html\n" +
		"HEALTHCHECK --interval=1s --timeout=1s --retries=3 CMD wget -q -O- http://127.0.0.1/ || exit 1\n" +
		`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n"
}

// stackWebService creates what `docker stack deploy` makes of a two-replica web service:
// stack labels, the image pinned as repository:tag@digest, a swarm-scoped network.
func stackWebService(t *testing.T, c *client.Client, stack, image string) string {
	t.Helper()
	ctx := context.Background()
	netName := stack + "_default"
	if _, err := c.NetworkCreate(ctx, netName, client.NetworkCreateOptions{
		Driver: "bridge", Scope: "swarm", Labels: map[string]string{labelStack: stack},
	}); err != nil {
		t.Fatalf("create network: %v", err)
	}
	t.Cleanup(func() {
		// The task containers go away asynchronously after the service is removed.
		deadline := time.Now().Add(30 * time.Second)
		for {
			_, err := c.NetworkRemove(context.Background(), netName, client.NetworkRemoveOptions{})
			if err == nil || time.Now().After(deadline) {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	replicas := uint64(2)
	res, err := c.ServiceCreate(ctx, client.ServiceCreateOptions{Spec: swarm.ServiceSpec{
		Annotations: swarm.Annotations{Name: stack + "_web", Labels: map[string]string{labelStack: stack}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: image, Labels: map[string]string{labelStack: stack}, Init: new(true)},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: netName, Aliases: []string{"web"}}},
		},
		Mode: swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		// The stack file's deploy.update_config: start-first, one at a time; failure_action is
		// left at the swarm's default (pause), so berth must ask for the rollback itself.
		UpdateConfig:   &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst, Monitor: 2 * time.Second},
		RollbackConfig: &swarm.UpdateConfig{Parallelism: 2, Order: swarm.UpdateOrderStopFirst, Monitor: time.Second},
	}})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	t.Cleanup(func() { _, _ = c.ServiceRemove(context.Background(), res.ID, client.ServiceRemoveOptions{}) })
	return res.ID
}

// taskBodies fetches / from every running task of the service, reached on its network address.
func taskBodies(t *testing.T, c *client.Client, id string) []string {
	t.Helper()
	ctx := context.Background()
	tasks, err := c.TaskList(ctx, client.TaskListOptions{Filters: client.Filters{}.Add("service", id).Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	var bodies []string
	for _, task := range tasks.Items {
		if task.Status.State != swarm.TaskStateRunning || task.Status.ContainerStatus == nil {
			bodies = append(bodies, "task "+string(task.Status.State))
			continue
		}
		ctr, err := c.ContainerInspect(ctx, task.Status.ContainerStatus.ContainerID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ep := range ctr.Container.NetworkSettings.Networks {
			body, err := deployertest.Get("http://" + ep.IPAddress.String() + "/")
			if err != nil {
				body = err.Error()
			}
			bodies = append(bodies, body)
		}
	}
	return bodies
}

// allAnswer reports whether want tasks answer, each with body.
func allAnswer(bodies []string, want int, body string) bool {
	if len(bodies) != want {
		return false
	}
	for _, b := range bodies {
		if b != body {
			return false
		}
	}
	return true
}

// recorder collects deploy Records.
type recorder struct {
	mu   sync.Mutex
	recs []Record
}

func (r *recorder) add(rec Record) { r.mu.Lock(); r.recs = append(r.recs, rec); r.mu.Unlock() }

func (r *recorder) last(t *testing.T) Record {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.recs) == 0 {
		t.Fatal("no deploy record")
	}
	return r.recs[len(r.recs)-1]
}

// TestSwarmStackUpdate drives a stack service on a single-node swarm through berth: a push
// moves both replicas to the new digest, a redelivery changes nothing, and broken images are
// rolled back — once by berth asking the swarm (failure_action pause), once by the swarm
// itself (failure_action rollback).
func TestSwarmStackUpdate(t *testing.T) {
	c, registry := deployertest.SwarmEngine(t)
	singleNodeSwarm(t, c)
	ctx := context.Background()
	repo, tag := "acme/swarmweb", deployertest.UniqueTag("sw")
	stack := strings.ReplaceAll(deployertest.UniqueTag("stk"), "-", "")

	deployertest.PushImageTo(t, c, registry, repo, tag, httpDockerfile("v1"))
	d1 := deployertest.ManifestDigest(t, registry, repo, tag)
	id := stackWebService(t, c, stack, repo+":"+tag+"@"+d1)
	deployertest.Eventually(t, "both v1 replicas answering", 60*time.Second, func() bool { return allAnswer(taskBodies(t, c, id), 2, "v1") })

	rec := &recorder{}
	deployCtx, cancel := context.WithCancel(ctx)
	t.Cleanup(cancel)
	d := New(deployCtx, c, Options{Owners: []string{"acme"}, OnRecord: rec.add, SwarmTimeout: 2 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	deploy := func(req Request) Record {
		t.Helper()
		ticket, err := d.Deploy(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if want := stack + "/web"; len(ticket.Services) != 1 || ticket.Services[0] != want {
			t.Fatalf("ticket services %v, want [%s]", ticket.Services, want)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		return rec.last(t)
	}
	inspect := func() swarm.Service {
		t.Helper()
		res, err := c.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Service
	}
	servicesDigest := func() string {
		ref, err := parseImageRef(inspect().Spec.TaskTemplate.ContainerSpec.Image)
		if err != nil {
			t.Fatal(err)
		}
		return ref.Digest
	}

	t.Run("push", func(t *testing.T) {
		deployertest.PushImageTo(t, c, registry, repo, tag, httpDockerfile("v2"))
		d2 := deployertest.ManifestDigest(t, registry, repo, tag)
		// No digest in the request (as Docker Hub's webhook): berth resolves it on the registry.
		r := deploy(Request{Source: "dockerhub", Repository: repo, Tag: tag})
		if r.Outcome != OutcomeDeployed || r.Backend != BackendSwarm || r.Digest != d2 || r.Project != stack || r.Service != "web" {
			t.Fatalf("record %+v, want deployed swarm %s/web at %s", r, stack, d2)
		}
		if got := servicesDigest(); got != d2 {
			t.Fatalf("service pinned to %s, want %s", got, d2)
		}
		if b := taskBodies(t, c, id); !allAnswer(b, 2, "v2") {
			t.Fatalf("tasks answer %q, want both v2", b)
		}
		if s := inspect(); s.Spec.UpdateConfig.Order != swarm.UpdateOrderStartFirst || s.Spec.UpdateConfig.Monitor != 2*time.Second {
			t.Fatalf("update_config changed: %+v", s.Spec.UpdateConfig)
		}

		t.Run("redelivery", func(t *testing.T) {
			before := inspect().Version.Index
			r := deploy(Request{Source: "distribution", Repository: repo, Tag: tag, Digest: d2})
			if r.Outcome != OutcomeUpToDate {
				t.Fatalf("redelivery outcome %q (%s), want %q", r.Outcome, r.Error, OutcomeUpToDate)
			}
			if after := inspect().Version.Index; after != before {
				t.Fatalf("service version %d after redelivery, was %d: it was updated again", after, before)
			}
		})

		// Each broken image exits at once, differently, so every push is a new digest.
		for i, tc := range []struct {
			failureAction  swarm.FailureAction
			berthRollsBack bool // else the swarm does it on its own
		}{
			{swarm.UpdateFailureActionPause, true},     // the swarm's default: it pauses, berth asks for the rollback
			{swarm.UpdateFailureActionRollback, false}, // the swarm rolls back by itself
			{swarm.UpdateFailureActionContinue, true},  // the update completes over failing tasks; berth notices them
		} {
			t.Run("broken image, failure_action "+string(tc.failureAction), func(t *testing.T) {
				s := inspect()
				s.Spec.UpdateConfig.FailureAction = tc.failureAction
				if _, err := c.ServiceUpdate(ctx, id, client.ServiceUpdateOptions{Version: s.Version, Spec: s.Spec}); err != nil {
					t.Fatal(err)
				}
				deployertest.PushImageTo(t, c, registry, repo, tag, fmt.Sprintf("FROM busybox:1\nCMD [\"sh\", \"-c\", \"exit %d\"]\n", i+1))
				broken := deployertest.ManifestDigest(t, registry, repo, tag)
				before := inspect().Version.Index
				r := deploy(Request{Source: "distribution", Repository: repo, Tag: tag, Digest: broken})
				if r.Outcome != OutcomeRolledBack || r.Digest != broken || r.Error == "" {
					t.Fatalf("record %+v, want rolled back from %s with the reason", r, broken)
				}
				if hasStep(r, "rollback") != tc.berthRollsBack {
					t.Fatalf("steps %+v: berth asked for the rollback: %v, want %v", r.Steps, !tc.berthRollsBack, tc.berthRollsBack)
				}
				if got := servicesDigest(); got != d2 {
					t.Fatalf("service pinned to %s after rollback, want %s", got, d2)
				}
				if b := taskBodies(t, c, id); !allAnswer(b, 2, "v2") {
					t.Fatalf("tasks answer %q after rollback, want both v2", b)
				}
				t.Logf("failure_action %s: rolled back in %s (%s); service version %d -> %d", tc.failureAction, r.Duration.Round(time.Millisecond), r.Error, before, inspect().Version.Index)
			})
		}
	})

	t.Run("status", func(t *testing.T) {
		list, err := d.SwarmServices(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got *SwarmService
		for i := range list {
			if list[i].ID == id {
				got = &list[i]
			}
		}
		if got == nil || !got.Tracked || got.Stack != stack || got.Image != repo+":"+tag || got.Desired != 2 || got.Running != 2 {
			t.Fatalf("swarm services %+v, want %s tracked with 2/2 replicas", list, id)
		}
	})
}

func hasStep(r Record, name string) bool {
	for _, s := range r.Steps {
		if s.Name == name {
			return true
		}
	}
	return false
}
