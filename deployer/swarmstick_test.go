package deployer

import (
	"context"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// stickStackFile is the stack file of TestSwarmRollbackThenStackDeploy: one web replica,
// updated start-first with the swarm's default failure_action (pause).
const stickStackFile = `services:
  web:
    image: IMAGE
    deploy:
      replicas: 1
      update_config: {parallelism: 1, order: start-first, monitor: 2s}
      rollback_config: {parallelism: 1, monitor: 1s}
`

// TestSwarmRollbackThenStackDeploy proves what docs/swarm.md says of a later `docker stack
// deploy` of the unchanged stack file after berth rolled a stack service back, with the real
// docker CLI: --resolve-image never and changed keep the rolled-back digest (the CLI reuses
// the service's pinned image, so no task is replaced), while the default (always) asks the
// registry again and rolls the service forward onto the failed digest the tag still names,
// where the swarm pauses the update over the failing task.
func TestSwarmRollbackThenStackDeploy(t *testing.T) {
	c, reg := deployertest.SwarmEngine(t)
	docker := dockerCLI(t)
	removeGatewayBridge(t, c)
	deployertest.SingleNodeSwarm(t, c)
	ctx := context.Background()
	repo, tag := "acme/swarmstick", deployertest.UniqueTag("stick")
	stack := strings.ReplaceAll(deployertest.UniqueTag("stk"), "-", "")
	file := filepath.Join(t.TempDir(), "stack.yml")
	if err := os.WriteFile(file, []byte(strings.Replace(stickStackFile, "IMAGE", repo+":"+tag, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	stackDeploy := func(resolve ...string) {
		t.Helper()
		args := append([]string{"stack", "deploy", "--detach=true", "-c", file}, resolve...)
		if out, err := docker(append(args, stack)...); err != nil {
			t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() { removeStack(t, c, docker, stack) })

	deployertest.PushImageTo(t, c, reg, repo, tag, deployertest.HealthyHTTPDockerfile("v1"))
	d1 := deployertest.ManifestDigest(t, reg, repo, tag)
	stackDeploy()
	inspect := func() swarm.Service {
		t.Helper()
		res, err := c.ServiceInspect(ctx, stack+"_web", client.ServiceInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Service
	}
	id := inspect().ID
	deployertest.Eventually(t, "the v1 replica answering", 60*time.Second, func() bool {
		return deployertest.AllAnswer(deployertest.TaskBodies(t, c, id), 1, "v1")
	})
	if img := inspect().Spec.TaskTemplate.ContainerSpec.Image; img != repo+":"+tag+"@"+d1 {
		t.Fatalf("stack deploy pinned the service to %s, want %s:%s@%s", img, repo, tag, d1)
	}

	// v2 exits at once: berth updates the service, the swarm pauses, berth asks for the rollback.
	deployertest.PushImageTo(t, c, reg, repo, tag, "FROM busybox:1\nCMD [\"sh\", \"-c\", \"exit 3\"]\n")
	broken := deployertest.ManifestDigest(t, reg, repo, tag)
	rec := &recorder{}
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := New(dctx, c, Options{Owners: []string{"acme"}, OnRecord: rec.add, SwarmTimeout: 2 * time.Minute,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if _, err := d.Deploy(ctx, Request{Source: "distribution", Repository: repo, Tag: tag, Digest: broken}); err != nil {
		t.Fatal(err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if r := rec.last(t); r.Outcome != OutcomeRolledBack || r.Digest != broken {
		t.Fatalf("record %+v, want rolled back from %s", r, broken)
	}
	pinned := repo + ":" + tag + "@" + d1
	if img := inspect().Spec.TaskTemplate.ContainerSpec.Image; img != pinned {
		t.Fatalf("service image %s after the rollback, want %s", img, pinned)
	}

	for _, mode := range []string{"never", "changed"} {
		t.Run("resolve-image "+mode, func(t *testing.T) {
			before, tasks := inspect().Version.Index, runningTasks(t, c, id)
			stackDeploy("--resolve-image", mode)
			s := inspect()
			if s.Version.Index == before {
				t.Fatalf("service version still %d: the stack deploy did not update the service", before)
			}
			if img := s.Spec.TaskTemplate.ContainerSpec.Image; img != pinned {
				t.Fatalf("service image %s after stack deploy --resolve-image %s, want the rolled-back %s", img, mode, pinned)
			}
			if s.UpdateStatus != nil && s.UpdateStatus.State == swarm.UpdateStateUpdating {
				t.Fatalf("the stack deploy started an update: %+v", s.UpdateStatus)
			}
			if after := runningTasks(t, c, id); !slices.Equal(after, tasks) {
				t.Fatalf("running tasks %v after the stack deploy, were %v: the service was recreated", after, tasks)
			}
			if b := deployertest.TaskBodies(t, c, id); !deployertest.AllAnswer(b, 1, "v1") {
				t.Fatalf("task answers %q, want v1", b)
			}
		})
	}

	t.Run("resolve-image always (the default)", func(t *testing.T) {
		stackDeploy()
		if img := inspect().Spec.TaskTemplate.ContainerSpec.Image; img != repo+":"+tag+"@"+broken {
			t.Fatalf("service image %s after a default stack deploy, want it rolled forward to the failed %s", img, broken)
		}
		var st *swarm.UpdateStatus
		deployertest.Eventually(t, "the swarm to pause the update over the failing task", 90*time.Second, func() bool {
			st = inspect().UpdateStatus
			return st != nil && st.State == swarm.UpdateStatePaused
		})
		t.Logf("default stack deploy rolled forward onto %s; the swarm paused: %s", broken, st.Message)
	})
}

// dockerCLI returns a runner of the docker CLI against the swarm engine, with a config
// directory of its own; it skips when there is no docker CLI, or fails with BERTH_REQUIRE_ENGINE=1.
func dockerCLI(t *testing.T) func(args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		msg := "the stack deploy test runs the docker CLI: " + err.Error()
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg + " (BERTH_REQUIRE_ENGINE=1, so this is a failure)")
		}
		t.Skip(msg)
	}
	cfg := t.TempDir()
	return func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, append([]string{"--host", os.Getenv("BERTH_SWARM_DOCKER_HOST")}, args...)...)
		cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+cfg)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
}

// runningTasks lists the ids of the service's tasks that are running, sorted.
func runningTasks(t *testing.T, c *client.Client, id string) []string {
	t.Helper()
	res, err := c.TaskList(context.Background(), client.TaskListOptions{Filters: client.Filters{}.Add("service", id).Add("desired-state", "running")})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, task := range res.Items {
		if task.Status.State == swarm.TaskStateRunning {
			ids = append(ids, task.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// removeGatewayBridge removes, once the swarm is left, the docker_gwbridge network the engine
// creates for the stack's overlay network, unless it was there before the test.
func removeGatewayBridge(t *testing.T, c *client.Client) {
	res, err := c.NetworkList(context.Background(), client.NetworkListOptions{Filters: client.Filters{}.Add("name", "docker_gwbridge")})
	if err != nil || len(res.Items) > 0 {
		return
	}
	t.Cleanup(func() {
		if _, err := c.NetworkRemove(context.Background(), "docker_gwbridge", client.NetworkRemoveOptions{}); err != nil {
			t.Logf("remove docker_gwbridge: %v", err)
		}
	})
}

// removeStack runs `docker stack rm` and waits until the stack's services and networks are gone.
func removeStack(t *testing.T, c *client.Client, docker func(...string) (string, error), stack string) {
	if out, err := docker("stack", "rm", stack); err != nil {
		t.Errorf("docker stack rm %s: %v\n%s", stack, err, out)
		return
	}
	f := client.Filters{}.Add("label", "com.docker.stack.namespace="+stack)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		svcs, err1 := c.ServiceList(context.Background(), client.ServiceListOptions{Filters: f})
		nets, err2 := c.NetworkList(context.Background(), client.NetworkListOptions{Filters: f})
		if err1 == nil && err2 == nil && len(svcs.Items) == 0 && len(nets.Items) == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Errorf("stack %s still has services or networks 30s after docker stack rm", stack)
}
