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
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
)

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
	c, reg := deployertest.SwarmEngine(t)
	ctx := context.Background()
	ctx0, cancel0 := context.WithCancel(ctx)
	defer cancel0()
	req := Request{Source: "dockerhub", Repository: "acme/swarmweb", Tag: "any"}
	if _, err := New(ctx0, c, Options{Owners: []string{"acme"}, Backend: BackendSwarm}).Deploy(ctx, req); fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "not a swarm manager") {
		t.Fatalf("BACKEND=swarm on an engine outside a swarm: %v, want an unavailable error saying it is no manager", err)
	}
	deployertest.SingleNodeSwarm(t, c)
	repo, tag := "acme/swarmweb", deployertest.UniqueTag("sw")
	stack := strings.ReplaceAll(deployertest.UniqueTag("stk"), "-", "")

	deployertest.PushImageTo(t, c, reg, repo, tag, deployertest.HealthyHTTPDockerfile("v1"))
	d1 := deployertest.ManifestDigest(t, reg, repo, tag)
	id := deployertest.StackWebService(t, c, stack, repo+":"+tag+"@"+d1)
	deployertest.Eventually(t, "both v1 replicas answering", 60*time.Second, func() bool { return deployertest.AllAnswer(deployertest.TaskBodies(t, c, id), 2, "v1") })

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
		ref, err := registry.ParseRef(inspect().Spec.TaskTemplate.ContainerSpec.Image)
		if err != nil {
			t.Fatal(err)
		}
		return ref.Digest
	}

	t.Run("push", func(t *testing.T) {
		deployertest.PushImageTo(t, c, reg, repo, tag, deployertest.HealthyHTTPDockerfile("v2"))
		d2 := deployertest.ManifestDigest(t, reg, repo, tag)
		// No digest in the request (as Docker Hub's webhook): berth resolves it on the registry.
		r := deploy(Request{Source: "dockerhub", Repository: repo, Tag: tag})
		if r.Outcome != OutcomeDeployed || r.Backend != BackendSwarm || r.Digest != d2 || r.Project != stack || r.Service != "web" {
			t.Fatalf("record %+v, want deployed swarm %s/web at %s", r, stack, d2)
		}
		if got := servicesDigest(); got != d2 {
			t.Fatalf("service pinned to %s, want %s", got, d2)
		}
		if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "v2") {
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
				deployertest.PushImageTo(t, c, reg, repo, tag, fmt.Sprintf("FROM busybox:1\nCMD [\"sh\", \"-c\", \"exit %d\"]\n", i+1))
				broken := deployertest.ManifestDigest(t, reg, repo, tag)
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
				if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "v2") {
					t.Fatalf("tasks answer %q after rollback, want both v2", b)
				}
				t.Logf("failure_action %s: rolled back in %s (%s); service version %d -> %d", tc.failureAction, r.Duration.Round(time.Millisecond), r.Error, before, inspect().Version.Index)
				// The same digest delivered again is not tried again.
				before = inspect().Version.Index
				if r := deploy(Request{Source: "distribution", Repository: repo, Tag: tag, Digest: broken}); r.Outcome != OutcomeSkipped || !strings.Contains(r.Error, "was rolled back") {
					t.Fatalf("the rolled-back digest delivered again: %s %q, want skipped saying why", r.Outcome, r.Error)
				}
				if after := inspect().Version.Index; after != before {
					t.Fatalf("service version %d after the skipped delivery, was %d", after, before)
				}
			})
		}
	})

	t.Run("BACKEND=compose leaves swarm services alone", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		defer ccancel()
		ticket, err := New(cctx, c, Options{Owners: []string{"acme"}, Backend: BackendCompose}).Deploy(ctx, Request{Repository: repo, Tag: tag})
		if err != nil || len(ticket.Services) != 0 {
			t.Fatalf("ticket %+v, err %v: want no services", ticket, err)
		}
	})

	t.Run("tracked", func(t *testing.T) {
		// What berth follows is what a push matches: the stack service, under its stack's name.
		ticket, err := d.Plan(ctx, Request{Repository: repo, Tag: tag})
		if err != nil {
			t.Fatal(err)
		}
		if want := stack + "/web"; len(ticket.Services) != 1 || ticket.Services[0] != want {
			t.Fatalf("push of %s:%s matches %v, want [%s]", repo, tag, ticket.Services, want)
		}
		if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "v2") {
			t.Fatalf("tasks answer %q, want 2 of 2 replicas running v2", b)
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

// TestSwarmForwardsRegistryAuth updates a service whose image lives in a registry that wants
// credentials, and that the service was deployed without: berth needs its own credentials to
// resolve the digest, and the swarm's node needs them (forwarded with the update) to pull.
func TestSwarmForwardsRegistryAuth(t *testing.T) {
	c, _ := deployertest.SwarmEngine(t)
	reg, user, pass := deployertest.SwarmAuthRegistry(t)
	deployertest.SingleNodeSwarm(t, c)
	ctx := context.Background()
	auth := deployertest.RegistryAuthHeader(reg, user, pass)
	repo, tag := "acme/private", deployertest.UniqueTag("auth")
	ref := reg + "/" + repo + ":" + tag
	digestOf := func() string {
		res, err := c.DistributionInspect(ctx, ref, client.DistributionInspectOptions{EncodedRegistryAuth: auth})
		if err != nil {
			t.Fatal(err)
		}
		return res.Descriptor.Digest.String()
	}

	// Version 1 is on the node already (built there): the swarm falls back to it when its pull
	// without credentials fails.
	deployertest.PushImageAuth(t, c, reg, auth, repo, tag, deployertest.HealthyHTTPDockerfile("private 1"))
	stack := strings.ReplaceAll(deployertest.UniqueTag("stk"), "-", "")
	id := deployertest.StackWebService(t, c, stack, ref+"@"+digestOf())
	deployertest.Eventually(t, "both v1 replicas answering", 60*time.Second, func() bool {
		return deployertest.AllAnswer(deployertest.TaskBodies(t, c, id), 2, "private 1")
	})
	// Version 2 only in the registry: the node must pull it, with credentials.
	deployertest.PushImageAuth(t, c, reg, auth, repo, tag, deployertest.HealthyHTTPDockerfile("private 2"))
	d2 := digestOf()
	if _, err := c.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	req := Request{Source: "distribution", Repository: reg + "/" + repo, Tag: tag}
	logins, err := registry.LoadCredentials("", reg+"="+user+":"+pass) // as PULL_CREDENTIALS
	if err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		auth    registry.Credentials
		outcome string
	}{
		{"without credentials", registry.Credentials{}, OutcomeFailed},
		{"with credentials", logins, OutcomeDeployed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recorder{}
			dctx, cancel := context.WithCancel(ctx)
			defer cancel()
			d := New(dctx, c, Options{Owners: []string{"acme"}, OnRecord: rec.add, RegistryAuth: tc.auth, SwarmTimeout: 2 * time.Minute,
				Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
			if _, err := d.Deploy(ctx, req); err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(ctx); err != nil {
				t.Fatal(err)
			}
			if r := rec.last(t); r.Outcome != tc.outcome {
				t.Fatalf("record %+v, want %s", r, tc.outcome)
			}
		})
	}
	if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "private 2") {
		t.Fatalf("tasks answer %q, want both on version 2", b)
	}
	res, err := c.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if img := res.Service.Spec.TaskTemplate.ContainerSpec.Image; !strings.HasSuffix(img, "@"+d2) {
		t.Fatalf("service image %s, want it pinned to %s", img, d2)
	}
}
