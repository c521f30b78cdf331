package main

import (
	"context"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestSwarmWebhookUpdatesStackService runs berth against a swarm manager: a Docker Hub webhook
// for the tag a stack service follows moves both replicas to the new digest, and the same
// webhook again updates nothing.
func TestSwarmWebhookUpdatesStackService(t *testing.T) {
	c, registry := deployertest.SwarmEngine(t)
	deployertest.SingleNodeSwarm(t, c)
	ctx := context.Background()
	tag := deployertest.UniqueTag("e2esw")
	stack := strings.ReplaceAll(tag, "-", "")
	deployertest.PushImageTo(t, c, registry, "acme/web", tag, deployertest.HealthyHTTPDockerfile("swarm 1"))
	d1 := deployertest.ManifestDigest(t, registry, "acme/web", tag)
	id := deployertest.StackWebService(t, c, stack, "acme/web:"+tag+"@"+d1)
	deployertest.Eventually(t, "both replicas of version 1", 60*time.Second, func() bool {
		return deployertest.AllAnswer(deployertest.TaskBodies(t, c, id), 2, "swarm 1")
	})
	pinned := func() (string, uint64) {
		res, err := c.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ref, err := reference.ParseNormalizedNamed(res.Service.Spec.TaskTemplate.ContainerSpec.Image)
		if err != nil {
			t.Fatal(err)
		}
		dg, _ := ref.(reference.Digested)
		if dg == nil {
			t.Fatalf("service image %s is not pinned by digest", ref)
		}
		return dg.Digest().String(), res.Service.Version.Index
	}

	url, logs := startBerth(t, map[string]string{"DOCKER_HOST": os.Getenv("BERTH_SWARM_DOCKER_HOST")})
	deployertest.PushImageTo(t, c, registry, "acme/web", tag, deployertest.HealthyHTTPDockerfile("swarm 2"))
	d2 := deployertest.ManifestDigest(t, registry, "acme/web", tag)
	start := time.Now()
	status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag))
	if status != http.StatusAccepted || !strings.Contains(body, stack+"/web") {
		t.Fatalf("webhook answered %d %s, want 202 naming %s/web", status, body, stack)
	}
	deployertest.Eventually(t, "the update to finish", 2*time.Minute, func() bool {
		return strings.Contains(logs.String(), `msg="deploy done"`) || strings.Contains(logs.String(), `msg="deploy failed"`)
	})
	t.Logf("webhook → both replicas converged on the new digest: %s", time.Since(start))
	if strings.Contains(logs.String(), `msg="deploy failed"`) {
		t.Fatalf("deploy failed:\n%s", logs.String())
	}
	if got, _ := pinned(); got != d2 {
		t.Fatalf("service pinned to %s, want the pushed %s", got, d2)
	}
	if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 2, "swarm 2") {
		t.Fatalf("tasks answer %q, want both on version 2", b)
	}

	_, before := pinned()
	// The same delivery again is caught by the handler; one it cannot recognise (a later
	// timestamp, as after a restart of berth) reaches the deployer, which must update nothing.
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusOK || !strings.Contains(body, "duplicate") {
		t.Fatalf("redelivery answered %d %s, want 200 duplicate", status, body)
	}
	again := strings.Replace(dockerHubPayload(t, tag), `"pushed_at": 1795183407`, `"pushed_at": 1795183408`, 1)
	if status, body := post(t, url+"/webhook?secret="+testSecret, again); status != http.StatusAccepted {
		t.Fatalf("second delivery of the same push answered %d %s, want 202", status, body)
	}
	deployertest.Eventually(t, "the redelivery to be handled", time.Minute, func() bool {
		return strings.Contains(logs.String(), "already runs the pushed digest")
	})
	if _, after := pinned(); after != before {
		t.Fatalf("service version %d after the redelivery, was %d: it was updated again", after, before)
	}
}
