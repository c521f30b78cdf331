package deployer

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/gate"
)

// execCounter is the real engine, counting the exec calls berth makes: a real engine cannot say
// afterwards whether anyone used its exec endpoints.
type execCounter struct {
	*client.Client
	execs atomic.Int32
}

func (e *execCounter) ExecCreate(ctx context.Context, id string, o client.ExecCreateOptions) (client.ExecCreateResult, error) {
	e.execs.Add(1)
	return e.Client.ExecCreate(ctx, id, o)
}

// deployWith runs one deploy of repo:tag against p with the deployer built from o and returns its records.
func deployWith(t *testing.T, p *parityProject, eng Engine, o Options, repo, tag string) []Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var recs []Record
	o.Projects, o.Owners = []compose.Spec{p.spec()}, []string{"acme"}
	o.OnRecord = func(r Record) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
	}
	d := New(ctx, eng, o)
	if _, err := d.Deploy(ctx, Request{Source: "test", Repository: repo, Tag: tag}); err != nil {
		t.Fatalf("deploy %s:%s: %v", repo, tag, err)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return recs
}

// gateContainers lists the gate containers left for the project: there must never be any.
func gateContainers(t *testing.T, eng *client.Client, project string) []string {
	t.Helper()
	res, err := eng.ContainerList(context.Background(), client.ContainerListOptions{All: true,
		Filters: client.Filters{}.Add("label", "berth.gate-for="+project+"/web")})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range res.Items {
		out = append(out, c.Names...)
	}
	return out
}

func TestGate(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	cases := []struct {
		name    string
		labels  string      // the service's berth.gate.* labels
		env     gate.Config // the default gate (GATE_*)
		policy  int         // when not 0, a policy endpoint answering this status is the gate
		passes  bool
		timeout bool
		output  string // a line the record must keep
	}{
		{name: "failing image vetoes", env: gate.Config{Image: "busybox:1",
			Command: `echo "scanning $BERTH_IMAGE"; echo "CVE-2026-0001 critical in $BERTH_SERVICE"; exit 3`},
			output: "CVE-2026-0001 critical in web"},
		{name: "passing image lets it through, without a network", passes: true, output: "no network: lo",
			labels: `      berth.gate.image: busybox:1
      berth.gate.command: '["sh", "-c", "echo no network: $$(ls /sys/class/net)"]'
`},
		{name: "label turns the default gate off", passes: true, env: gate.Config{Image: "busybox:1", Command: "exit 1"},
			labels: "      berth.gate: \"off\"\n"},
		{name: "hanging gate is killed at its timeout", timeout: true, output: "scanning forever",
			labels: `      berth.gate.image: busybox:1
      berth.gate.command: echo scanning forever; exec sleep 600
      berth.gate.timeout: 2s
`},
		{name: "policy endpoint refuses", policy: http.StatusForbidden, output: "unsigned image"},
		{name: "policy endpoint agrees", policy: http.StatusNoContent, passes: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tag := deployertest.UniqueTag("gate")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
			labels := ""
			if tc.labels != "" {
				labels = "    labels:\n" + tc.labels
			}
			p := newParityProject(t, eng, cli, map[string]string{"compose.yaml": `name: @PROJECT@
services:
  web:
    image: acme/web:` + tag + `
    init: true
` + labels})
			p.compose("up", "-d", "--quiet-pull")
			before := p.containers()
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")

			def := tc.env
			var asked atomic.Pointer[gate.Request]
			if tc.policy != 0 {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					var req gate.Request
					_ = json.NewDecoder(r.Body).Decode(&req)
					asked.Store(&req)
					w.WriteHeader(tc.policy)
					if tc.policy >= 300 {
						_, _ = w.Write([]byte("policy says no:\nunsigned image\n"))
					}
				}))
				t.Cleanup(srv.Close)
				def = gate.Config{URL: srv.URL, Timeout: 10 * time.Second}
			}
			counted := &execCounter{Client: eng}
			recs := deployWith(t, p, counted, Options{Gate: def}, "acme/web", tag)
			if len(recs) != 1 {
				t.Fatalf("records: %+v", recs)
			}
			rec := recs[0]
			after := p.containers()
			name := p.name + "-web-1"
			if tc.passes {
				if rec.Outcome != OutcomeDeployed || after[name].ID == before[name].ID {
					t.Fatalf("outcome %s (%s), container replaced: %v; want deployed", rec.Outcome, rec.Error, after[name].ID != before[name].ID)
				}
			} else {
				if rec.Outcome != OutcomeRejected || !strings.Contains(rec.Error, "rejected by gate") {
					t.Fatalf("outcome %s (%s), want rejected by gate", rec.Outcome, rec.Error)
				}
				if a, b := after[name], before[name]; a.ID != b.ID || !a.State.Running || a.State.StartedAt != b.State.StartedAt {
					t.Errorf("a vetoed deploy touched the old container: before %s started %s, after %s running %v started %s",
						b.ID, b.State.StartedAt, a.ID, a.State.Running, a.State.StartedAt)
				}
			}
			if tc.output != "" && (rec.Gate == nil || !slices.Contains(rec.Gate.Output, tc.output)) {
				t.Errorf("gate record %+v does not keep the output line %q", rec.Gate, tc.output)
			}
			if tc.timeout && (rec.Gate == nil || !rec.Gate.TimedOut) {
				t.Errorf("gate record %+v: want timed out", rec.Gate)
			}
			if tc.policy != 0 {
				if req := asked.Load(); req == nil || req.Service != "web" || req.Project != p.name || !strings.HasPrefix(req.ImageID, "sha256:") {
					t.Errorf("the policy endpoint was asked %+v", req)
				}
			}
			if left := gateContainers(t, eng, p.name); len(left) > 0 {
				t.Errorf("gate containers left behind: %v", left)
			}
			if n := counted.execs.Load(); n != 0 {
				t.Errorf("a service without hooks made %d exec calls", n)
			}
		})
	}
}
