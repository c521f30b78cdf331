package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/berth-dev/berth/internal/socketproxy"
)

// rolloutEnv are the settings every rollout test runs berth with: a quick settle period and a
// state directory of the test's own.
func rolloutEnv(t *testing.T, dir string) map[string]string {
	return map[string]string{"PROJECT_DIR": dir, "HEALTH_SETTLE": "500ms", "HEALTH_TIMEOUT": "30s", "STATE_DIR": t.TempDir()}
}

// projectContainers lists every container of project, by name.
func projectContainers(t *testing.T, eng *client.Client, project string) map[string]string {
	t.Helper()
	res, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "com.docker.compose.project="+project)})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, c := range res.Items {
		out[strings.TrimPrefix(c.Names[0], "/")] = string(c.State)
	}
	return out
}

// requireOnly fails unless project's containers are exactly want, all running.
func requireOnly(t *testing.T, eng *client.Client, project string, want ...string) {
	t.Helper()
	got := projectContainers(t, eng, project)
	for _, name := range want {
		if got[name] != "running" {
			t.Errorf("%s is %q, want running (containers: %v)", name, got[name], got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("containers %v, want only %v", got, want)
	}
}

// finishedDeploys counts the deploys berth's log says ended, however they ended.
func finishedDeploys(logs string) int {
	return len(regexp.MustCompile(`msg="deploy (done|up to date|failed)`).FindAllString(logs, -1))
}

// TestBurstOfWebhooksEndsOnNewestVersion: 100 concurrent webhooks for one service, sent while
// two new versions are pushed, all answer 202 and end in one container on the newest version,
// with no temporary container left and far fewer deploys than webhooks.
func TestBurstOfWebhooksEndsOnNewestVersion(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	tag, project, dir := upProject(t, eng, compose, "burst", "services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n")

	url, logs := startBerth(t, rolloutEnv(t, dir))
	var wg sync.WaitGroup
	statuses := make(chan int, 100)
	payload := dockerHubPayload(t, tag)
	pushedAt := 1795183407
	fire := func(n int) {
		for range n {
			pushedAt++ // every webhook is a distinct push, newer than the ones before
			body := strings.Replace(payload, `"pushed_at": 1795183407`, `"pushed_at": `+strconv.Itoa(pushedAt), 1)
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := http.Post(url+"/webhook?secret="+testSecret, "application/json", strings.NewReader(body))
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
	}
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	fire(50)
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 3")
	fire(50)
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusAccepted {
			t.Fatalf("a webhook answered %d, want 202", s)
		}
	}
	web := project + "-web-1"
	deployertest.Eventually(t, "every deploy to end with version 3 answering", 3*time.Minute, func() bool {
		l := logs.String()
		if finishedDeploys(l) == 0 || finishedDeploys(l) != strings.Count(l, "msg=pull ") {
			return false
		}
		_, port, err := servicePort(context.Background(), eng, web)
		if err != nil {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 3"
	})
	n := finishedDeploys(logs.String())
	t.Logf("100 webhooks → %d deploys (%d recreates)", n, strings.Count(logs.String(), `msg="deploy done"`))
	if n > 20 {
		t.Errorf("%d deploys for 100 webhooks of one service; pushes were not coalesced", n)
	}
	requireOnly(t, eng, project, web)
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("errors logged:\n%s", logs.String())
	}
}

// proxyImage builds testdata/proxy, a reverse proxy that resolves its upstream's name anew for
// every request and retries a request that got no answer, into a local image for a compose
// service.
func proxyImage(t *testing.T, eng *client.Client, tag string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "proxy")
	cmd := exec.Command("go", "build", "-o", bin, "./testdata/proxy")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build proxy: %v\n%s", err, out)
	}
	prog, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	dockerfile := "FROM scratch\nCOPY proxy /proxy\nENTRYPOINT [\"/proxy\"]\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, body := range map[string][]byte{"Dockerfile": []byte(dockerfile), "proxy": prog} {
		_ = tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body))})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	ref := "berthtest/proxy:" + tag
	res, err := eng.ImageBuild(context.Background(), &buf, client.ImageBuildOptions{Tags: []string{ref}, Remove: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	t.Cleanup(func() { _, _ = eng.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{}) })
	return ref
}

// TestRolloutOrdersThroughAProxy: a reverse proxy container on the compose network forwards
// to the service by name; the test polls it every 5 ms across a deploy. With
// deploy.update_config.order: start-first no request fails; with compose's stop-first order the
// outage is measured and reported.
func TestRolloutOrdersThroughAProxy(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	proxy := proxyImage(t, eng, strings.ReplaceAll(deployertest.UniqueTag("p"), "-", ""))
	for _, order := range []string{"start-first", "stop-first"} {
		t.Run(order, func(t *testing.T) {
			tag := deployertest.UniqueTag("order")
			project := strings.ReplaceAll(tag, "-", "")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
			dir := deployertest.WriteProject(t, project, fmt.Sprintf(`services:
  web:
    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
    deploy: {update_config: {order: %s}}
  proxy:
    image: %s
    pull_policy: never
    environment: {UPSTREAM: "http://web:80"}
    ports: ["127.0.0.1::8080"]
`, tag, order, proxy))
			deployertest.ComposeUp(t, compose, dir)
			res, err := eng.ContainerInspect(context.Background(), project+"-proxy-1", client.ContainerInspectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var front string
			for port, b := range res.Container.NetworkSettings.Ports {
				if port.Num() == 8080 && len(b) > 0 {
					front = "http://127.0.0.1:" + b[0].HostPort + "/"
				}
			}
			deployertest.Eventually(t, "the proxy to answer", 30*time.Second, func() bool {
				got, _ := deployertest.Get(front)
				return got == "version 1"
			})
			url, logs := startBerth(t, rolloutEnv(t, dir))

			stop := make(chan struct{})
			type result struct {
				ok, fail    int
				first, last time.Time
				bodies      map[string]int
				why         []string // what each failed request got
			}
			done := make(chan result, 1)
			go func() {
				r := result{bodies: map[string]int{}}
				// Longer than the proxy's retries (3 s, the last try at most 1 s more for headers).
				c := http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
				for i := 0; i < 30000; i++ { // 30000 × ≥5 ms bounds the loop
					select {
					case <-stop:
						done <- r
						return
					default:
					}
					resp, err := c.Get(front)
					if err == nil {
						b, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							r.ok++
							r.bodies[string(b)]++
							time.Sleep(5 * time.Millisecond)
							continue
						}
						err = fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(b))
					}
					r.why = append(r.why, err.Error())
					r.fail++
					if r.first.IsZero() {
						r.first = time.Now()
					}
					r.last = time.Now()
					time.Sleep(5 * time.Millisecond)
				}
				done <- r
			}()
			time.Sleep(500 * time.Millisecond) // let the client get going; not an assertion
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
			if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
				t.Fatalf("webhook answered %d %s", status, body)
			}
			deployertest.Eventually(t, "the deploy to end", 2*time.Minute, func() bool { return finishedDeploys(logs.String()) == 1 })
			time.Sleep(500 * time.Millisecond)
			close(stop)
			r := <-done
			outage := "none"
			if r.fail > 0 {
				outage = fmt.Sprintf("%s from first to last failed request", r.last.Sub(r.first).Round(time.Millisecond))
			}
			t.Logf("%s through the proxy: %d requests answered %v, %d failed %q; outage %s", order, r.ok, r.bodies, r.fail, r.why, outage)
			if !strings.Contains(logs.String(), `msg="deploy done"`) {
				t.Fatalf("deploy did not succeed:\n%s", logs.String())
			}
			if r.bodies["version 2"] == 0 {
				t.Error("the client never saw version 2")
			}
			if order == "start-first" && r.fail != 0 {
				t.Errorf("start-first: %d requests failed, want 0", r.fail)
			}
			requireOnly(t, eng, project, project+"-web-1", project+"-proxy-1")
		})
	}
}

// buildBerth compiles berth into a temporary directory, for tests that must kill it.
func buildBerth(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "berth")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// berthProcess is berth running as a child process.
type berthProcess struct {
	cmd  *exec.Cmd
	url  string
	logs *deployertest.Log
	done chan error
}

func startBerthProcess(t *testing.T, bin string, env map[string]string) *berthProcess {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(bin)
	cmd.Env = os.Environ()
	for k, v := range map[string]string{"OWNER": "acme", "SECRET": testSecret, "LISTEN_ADDR": addr, "LOG_LEVEL": "debug", "XDG_STATE_HOME": t.TempDir()} {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	p := &berthProcess{cmd: cmd, url: "http://" + addr, logs: &deployertest.Log{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	deployertest.Eventually(t, "berth to answer /healthz", 30*time.Second, func() bool {
		_, err := deployertest.Get(p.url + "/healthz")
		return err == nil
	})
	return p
}

// TestKilledMidDeployIsRepairedAtStart: berth, run as a process, is killed with SIGKILL right
// after it answered 202 (by the test) or right after each journaled step of the deploy
// (BERTH_TEST_CRASH_AFTER); started again, it repairs the deploy before it serves. With
// STATE_DIR the journal repairs it and the accepted push is deployed again: the pushed version
// ends up running, deployed once. With STATE_DIR=none berth reads the repair from its container
// names: the service runs the new or the previous version. Either way no temporary container
// and no journal is left, and a routine `docker compose up -d` (v5.6.0, then v2.40.3) recreates
// nothing: the service answers on the version the repair left. (A short stop_grace_period: a
// repair from container names first waits out the longest stop, see lookAgain.)
func TestKilledMidDeployIsRepairedAtStart(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	composeV2 := deployertest.ComposeCLI(t, "v2.40.3")
	bin := buildBerth(t)
	stopFirst := []string{"create", "stop", "set-aside", "rename", "start", "health", "remove"}
	startFirst := []string{"create", "start", "health", "stop", "remove", "rename"}
	for _, tc := range []struct {
		name, order string
		steps       []string
		durable     bool // STATE_DIR set: the pushed version must end up running
	}{
		{"stop-first", "stop-first", append([]string{"accepted"}, stopFirst...), true},
		{"start-first", "start-first", append([]string{"accepted"}, startFirst...), true},
		{"stop-first without STATE_DIR", "stop-first", stopFirst, false},
		{"start-first without STATE_DIR", "start-first", startFirst, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tag := deployertest.UniqueTag("crash")
			project := strings.ReplaceAll(tag, "-", "")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 0")
			dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n    stop_grace_period: 1s\n    deploy: {update_config: {order: %s}}\n", tag, tc.order))
			deployertest.ComposeUp(t, compose, dir)
			env := rolloutEnv(t, dir)
			if !tc.durable {
				env["STATE_DIR"] = "none"
			}
			web := project + "-web-1"
			running := "version 0"
			for i, step := range tc.steps {
				pushed := fmt.Sprintf("version %d", i+1)
				deployertest.PushHTTPImage(t, eng, "acme/web", tag, pushed)
				killAfter(t, bin, env, tag, step)
				again := startBerthProcess(t, bin, env)
				if tc.durable {
					// The push is owed: berth deploys it again, once (a finished one is up to date).
					deployertest.Eventually(t, "the owed push to be deployed", time.Minute, func() bool { return finishedDeploys(again.logs.String()) >= 1 })
				}
				requireOnly(t, eng, project, web)
				// A container the repair started again may take a moment to answer.
				var got string
				deployertest.Eventually(t, "web to answer after step "+step, 10*time.Second, func() bool {
					_, port, err := servicePort(context.Background(), eng, web)
					got, _ = deployertest.Get("http://127.0.0.1:" + port + "/")
					return err == nil && got != ""
				})
				switch {
				case tc.durable && got != pushed:
					t.Errorf("after step %s web answers %q, want the pushed %q\n%s", step, got, pushed, again.logs.String())
				case !tc.durable && got != pushed && got != running:
					t.Errorf("after step %s web answers %q, want %q or the previous %q", step, got, pushed, running)
				}
				running = got
				for _, cli := range []string{compose, composeV2} {
					id, _, err := servicePort(context.Background(), eng, web)
					out := deployertest.Compose(t, cli, dir, "up", "-d")
					if again, port, err2 := servicePort(context.Background(), eng, web); err != nil || err2 != nil || again != id {
						t.Errorf("after step %s `%s up -d` recreated web (%v, %v):\n%s", step, filepath.Base(cli), err, err2, out)
					} else if answer, _ := deployertest.Get("http://127.0.0.1:" + port + "/"); answer != running {
						t.Errorf("after step %s and `%s up -d` web answers %q, want %q", step, filepath.Base(cli), answer, running)
					}
				}
				_ = again.cmd.Process.Signal(syscall.SIGTERM)
				<-again.done
				again.done <- nil
				if n := finishedDeploys(again.logs.String()); tc.durable && n != 1 {
					t.Errorf("after step %s the restarted berth ended %d deploys, want 1\n%s", step, n, again.logs.String())
				}
				if tc.durable {
					owed, err := state.New(env["STATE_DIR"]).Accepted()
					if err != nil || len(owed.Pending()) > 0 {
						t.Errorf("after step %s pushes are still owed: %v (%v)", step, owed.Pending(), err)
					}
				}
				if journals, _ := filepath.Glob(filepath.Join(env["STATE_DIR"], "journal", "*")); len(journals) > 0 {
					t.Errorf("after step %s journals remain: %v", step, journals)
				}
				t.Logf("killed after %s: repaired, web answers %q", step, got)
			}
		})
	}
}

// killAfter starts berth, posts a push of tag and has berth killed with SIGKILL after step:
// "accepted" is right after the 202 (by the test), any other a journaled step (by berth).
func killAfter(t *testing.T, bin string, env map[string]string, tag, step string) {
	t.Helper()
	crashing := map[string]string{}
	for k, v := range env {
		crashing[k] = v
	}
	if step != "accepted" {
		crashing["BERTH_TEST_CRASH_AFTER"] = step
	}
	b := startBerthProcess(t, bin, crashing)
	if status, body := post(t, b.url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s", status, body)
	}
	if step == "accepted" {
		_ = b.cmd.Process.Kill()
	}
	select {
	case err := <-b.done:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("after step %s berth ended with %v, want SIGKILL\n%s", step, err, b.logs.String())
		}
	case <-time.After(time.Minute):
		t.Fatalf("berth did not crash after step %s\n%s", step, b.logs.String())
	}
	b.done <- nil // for its cleanup
	if step == "accepted" {
		t.Logf("killed after the 202; the pull had finished: %v", strings.Contains(b.logs.String(), "msg=create"))
	}
}

// TestEngineDownWebhooksQueueAndRetry: with the engine unreachable (berth talks to it through a
// socket proxy the test stops), a webhook still answers 202; the deploy retries with backoff
// and completes once the engine answers again.
func TestEngineDownWebhooksQueueAndRetry(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	engineSock, ok := strings.CutPrefix(os.Getenv("DOCKER_HOST"), "unix://")
	if !ok {
		t.Skip("needs DOCKER_HOST=unix://…")
	}
	tag, project, dir := upProject(t, eng, compose, "down", "services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n")

	sock := filepath.Join(t.TempDir(), "engine.sock")
	serve := func() *http.Server {
		_ = os.Remove(sock)
		ln, err := net.Listen("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: socketproxy.New(engineSock, socketproxy.Policy{}, slog.New(slog.DiscardHandler))}
		go func() { _ = srv.Serve(ln) }()
		return srv
	}
	proxy := serve()
	env := rolloutEnv(t, dir)
	env["DOCKER_HOST"] = "unix://" + sock
	url, logs := startBerth(t, env)
	_ = proxy.Close()
	t.Cleanup(func() { _ = proxy.Close() })

	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("with the engine down the webhook answered %d %s, want 202", status, body)
	}
	deployertest.Eventually(t, "berth to retry", 30*time.Second, func() bool {
		return strings.Contains(logs.String(), "engine unreachable; retrying the deploy")
	})
	proxy = serve()
	web := project + "-web-1"
	deployertest.Eventually(t, "the deploy to end once the engine is back", 2*time.Minute, func() bool { return finishedDeploys(logs.String()) == 1 })
	t.Logf("engine back; deploy ended:\n%s", grepLines(logs.String(), "retrying", "deploy "))
	deployertest.Eventually(t, "version 2 to answer", 10*time.Second, func() bool {
		_, port, err := servicePort(context.Background(), eng, web)
		if err != nil {
			return false
		}
		got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
		return got == "version 2"
	})
	requireOnly(t, eng, project, web)
}

// grepLines keeps the lines of s that contain any of words.
func grepLines(s string, words ...string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		for _, w := range words {
			if strings.Contains(l, w) {
				out = append(out, l)
				break
			}
		}
	}
	return strings.Join(out, "\n")
}
