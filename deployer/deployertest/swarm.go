package deployertest

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// testSwarmLabel marks a swarm these helpers created, so a run that died halfway may replace
// it, while a swarm somebody else made is never left.
const testSwarmLabel = "dev.berth.test-swarm"

// stackLabel is the label `docker stack deploy` puts on a stack's services and networks.
const stackLabel = "com.docker.stack.namespace"

// SwarmEngine returns a client for the engine the swarm tests may turn into a single-node swarm,
// named by BERTH_SWARM_DOCKER_HOST (never the shared engine: swarm init changes the whole
// daemon), and its registry, BERTH_SWARM_REGISTRY (host:port, also that engine's Hub mirror).
// It skips when they are unset, or fails with BERTH_REQUIRE_ENGINE=1. The test holds the engine
// alone until it ends: the packages' tests run in parallel and a swarm is one per daemon.
func SwarmEngine(t testing.TB) (*client.Client, string) {
	t.Helper()
	host, registry := os.Getenv("BERTH_SWARM_DOCKER_HOST"), os.Getenv("BERTH_SWARM_REGISTRY")
	var err error
	var c *client.Client
	if host == "" || registry == "" {
		err = fmt.Errorf("BERTH_SWARM_DOCKER_HOST=%q and BERTH_SWARM_REGISTRY=%q must both be set", host, registry)
	} else {
		c, err = client.New(client.FromEnv, client.WithHost(host))
	}
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		msg := fmt.Sprintf("no private engine for the swarm tests: %v; start one with "+
			"`SANDBOX_DIR=/tmp/dksw REGISTRY_PORT=5010 AUTH_REGISTRY_PORT=5011 ../shared/sandbox/engine up` and export "+
			"BERTH_SWARM_DOCKER_HOST=unix:///tmp/dksw/docker.sock BERTH_SWARM_REGISTRY=127.0.0.1:5010", err)
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg + " (BERTH_REQUIRE_ENGINE=1, so this is a failure)")
		}
		t.Skip(msg)
	}
	lockEngine(t, host)
	t.Cleanup(func() { c.Close() })
	return c, registry
}

// SwarmAuthRegistry is the swarm engine's registry that wants credentials, and those
// credentials: BERTH_SWARM_AUTH_REGISTRY (host:port), BERTH_SWARM_AUTH_USER, BERTH_SWARM_AUTH_PASS.
// It skips when they are unset, or fails with BERTH_REQUIRE_ENGINE=1.
func SwarmAuthRegistry(t testing.TB) (registry, user, pass string) {
	t.Helper()
	registry, user, pass = os.Getenv("BERTH_SWARM_AUTH_REGISTRY"), os.Getenv("BERTH_SWARM_AUTH_USER"), os.Getenv("BERTH_SWARM_AUTH_PASS")
	if registry == "" || user == "" || pass == "" {
		msg := "BERTH_SWARM_AUTH_REGISTRY, BERTH_SWARM_AUTH_USER and BERTH_SWARM_AUTH_PASS are not all set; start the registry with " +
			"`SANDBOX_DIR=/tmp/dksw REGISTRY_PORT=5010 AUTH_REGISTRY_PORT=5011 ../shared/sandbox/engine registry-auth up USER PASS` (see .ci/run)"
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg + " (BERTH_REQUIRE_ENGINE=1, so this is a failure)")
		}
		t.Skip(msg)
	}
	return registry, user, pass
}

// lockEngine holds an exclusive file lock named after host until the test ends.
func lockEngine(t testing.TB, host string) {
	t.Helper()
	name := strings.NewReplacer("/", "_", ":", "_").Replace(host)
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "berth-swarm-"+name+".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}

// SingleNodeSwarm makes the swarm engine a single-node swarm for the test, as
// `docker swarm init --advertise-addr 127.0.0.1` would, and leaves it at the end.
func SingleNodeSwarm(t testing.TB, c *client.Client) {
	t.Helper()
	ctx := context.Background()
	info, err := c.Info(ctx, client.InfoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Info.Swarm.LocalNodeState == swarm.LocalNodeStateActive {
		sw, err := c.SwarmInspect(ctx, client.SwarmInspectOptions{})
		if err != nil || sw.Swarm.Spec.Labels[testSwarmLabel] == "" {
			t.Fatalf("the engine at BERTH_SWARM_DOCKER_HOST is already in a swarm these tests did not create (%v); give the swarm tests an engine of their own", err)
		}
		if _, err := c.SwarmLeave(ctx, client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Fatalf("leave the swarm an earlier run left: %v", err)
		}
	}
	spec := swarm.Spec{Annotations: swarm.Annotations{Labels: map[string]string{testSwarmLabel: "1"}}}
	// Ports of its own rather than swarm's defaults (2377, 4789), so the swarm engines of
	// two sandboxes (CI runs Engine 20.10's and 29's suites side by side) can both be swarms.
	listen, dataPath := freePort(t, "tcp", "127.0.0.1"), freePort(t, "udp", "")
	opts := client.SwarmInitOptions{ListenAddr: fmt.Sprintf("127.0.0.1:%d", listen), AdvertiseAddr: "127.0.0.1",
		DataPathPort: uint32(dataPath), Spec: spec}
	if _, err := c.SwarmInit(ctx, opts); err != nil {
		t.Fatalf("swarm init: %v", err)
	}
	t.Cleanup(func() {
		if _, err := c.SwarmLeave(context.Background(), client.SwarmLeaveOptions{Force: true}); err != nil {
			t.Errorf("swarm leave: %v", err)
		}
	})
}

// freePort returns a port on host that nothing listens on now, in the range swarm accepts for
// its data path (1024–49151), trying a bounded number of random ones.
func freePort(t testing.TB, network, host string) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(29000)
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		var err error
		if network == "udp" {
			var pc net.PacketConn
			if pc, err = net.ListenPacket(network, addr); err == nil {
				pc.Close()
			}
		} else {
			var l net.Listener
			if l, err = net.Listen(network, addr); err == nil {
				l.Close()
			}
		}
		if err == nil {
			return port
		}
	}
	t.Fatalf("no free %s port found for the swarm", network)
	return 0
}

// HealthyHTTPDockerfile is a busybox HTTP server answering body, healthy once it answers.
func HealthyHTTPDockerfile(body string) string {
	return "FROM busybox:1\n" +
		"RUN mkdir -p /www && printf '%s' '" + body + "' > /www/index.html\n" +
		"HEALTHCHECK --interval=1s --timeout=1s --retries=3 CMD wget -q -O- http://127.0.0.1/ || exit 1\n" +
		`CMD ["httpd", "-f", "-p", "80", "-h", "/www"]` + "\n"
}

// StackWebService creates what `docker stack deploy` makes of a two-replica web service named
// stack_web: stack labels, image as given (the CLI pins repository:tag@digest), a swarm-scoped
// bridge network the host can reach the tasks on, and this update_config: one task at a
// time, start-first, monitored 2s, failure_action left at the swarm's default (pause).
// The service and network are removed at the end; it returns the service id.
func StackWebService(t testing.TB, c *client.Client, stack, image string) string {
	t.Helper()
	ctx := context.Background()
	netName := stack + "_default"
	if _, err := c.NetworkCreate(ctx, netName, client.NetworkCreateOptions{
		Driver: "bridge", Scope: "swarm", Labels: map[string]string{stackLabel: stack},
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
		Annotations: swarm.Annotations{Name: stack + "_web", Labels: map[string]string{stackLabel: stack}},
		TaskTemplate: swarm.TaskSpec{
			ContainerSpec: &swarm.ContainerSpec{Image: image, Labels: map[string]string{stackLabel: stack}, Init: new(true)},
			Networks:      []swarm.NetworkAttachmentConfig{{Target: netName, Aliases: []string{"web"}}},
		},
		Mode:           swarm.ServiceMode{Replicated: &swarm.ReplicatedService{Replicas: &replicas}},
		UpdateConfig:   &swarm.UpdateConfig{Parallelism: 1, Order: swarm.UpdateOrderStartFirst, Monitor: 2 * time.Second},
		RollbackConfig: &swarm.UpdateConfig{Parallelism: 2, Order: swarm.UpdateOrderStopFirst, Monitor: time.Second},
	}})
	if err != nil {
		t.Fatalf("create service: %v", err)
	}
	t.Cleanup(func() { _, _ = c.ServiceRemove(context.Background(), res.ID, client.ServiceRemoveOptions{}) })
	return res.ID
}

// TaskBodies fetches / from every task the service wants running, from inside the task's own
// container (its loopback), so the test never routes traffic to container addresses; a task
// not running yet shows as "task <state>".
func TaskBodies(t testing.TB, c *client.Client, id string) []string {
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
		body, err := execOutput(ctx, c, task.Status.ContainerStatus.ContainerID, "wget", "-q", "-O-", "http://127.0.0.1/")
		if err != nil {
			body = err.Error()
		}
		bodies = append(bodies, body)
	}
	return bodies
}

// execOutput runs cmd in the container and returns what it printed.
func execOutput(ctx context.Context, c *client.Client, containerID string, cmd ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ex, err := c.ExecCreate(ctx, containerID, client.ExecCreateOptions{Cmd: cmd, AttachStdout: true, AttachStderr: true, TTY: true})
	if err != nil {
		return "", err
	}
	att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{TTY: true})
	if err != nil {
		return "", err
	}
	defer att.Close()
	out, err := io.ReadAll(att.Reader)
	return strings.TrimRight(string(out), "\r\n"), err
}

// AllAnswer reports whether exactly want bodies were fetched, each equal to body.
func AllAnswer(bodies []string, want int, body string) bool {
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
