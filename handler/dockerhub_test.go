package handler

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
)

// countingEngine stands in for the Docker Engine: it counts every call and fails it. The
// handler must not reach the engine for any request it refuses; a real engine cannot report
// that it was never called.
type countingEngine struct {
	mu    sync.Mutex
	calls []string
}

var errNoEngine = errors.New("countingEngine: no engine in this test")

func (e *countingEngine) call(name string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, name)
	return errNoEngine
}

func (e *countingEngine) made() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.calls...)
}

func (e *countingEngine) ImagePull(context.Context, string, client.ImagePullOptions) (client.ImagePullResponse, error) {
	return nil, e.call("ImagePull")
}
func (e *countingEngine) ImageInspect(context.Context, string, ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	return client.ImageInspectResult{}, e.call("ImageInspect")
}
func (e *countingEngine) ImageTag(context.Context, client.ImageTagOptions) (client.ImageTagResult, error) {
	return client.ImageTagResult{}, e.call("ImageTag")
}

// ContainerList answers an empty engine: a deploy reads it for a crash's leftovers before it pulls.
func (e *countingEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	_ = e.call("ContainerList")
	return client.ContainerListResult{}, nil
}
func (e *countingEngine) ContainerInspect(context.Context, string, client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	return client.ContainerInspectResult{}, e.call("ContainerInspect")
}
func (e *countingEngine) ContainerCreate(context.Context, client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	return client.ContainerCreateResult{}, e.call("ContainerCreate")
}
func (e *countingEngine) ContainerStart(context.Context, string, client.ContainerStartOptions) (client.ContainerStartResult, error) {
	return client.ContainerStartResult{}, e.call("ContainerStart")
}
func (e *countingEngine) ContainerStop(context.Context, string, client.ContainerStopOptions) (client.ContainerStopResult, error) {
	return client.ContainerStopResult{}, e.call("ContainerStop")
}
func (e *countingEngine) ContainerRemove(context.Context, string, client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	return client.ContainerRemoveResult{}, e.call("ContainerRemove")
}
func (e *countingEngine) ContainerRename(context.Context, string, client.ContainerRenameOptions) (client.ContainerRenameResult, error) {
	return client.ContainerRenameResult{}, e.call("ContainerRename")
}
func (e *countingEngine) ImageRemove(context.Context, string, client.ImageRemoveOptions) (client.ImageRemoveResult, error) {
	return client.ImageRemoveResult{}, e.call("ImageRemove")
}
func (e *countingEngine) NetworkDisconnect(context.Context, string, client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error) {
	return client.NetworkDisconnectResult{}, e.call("NetworkDisconnect")
}
func (e *countingEngine) NetworkList(context.Context, client.NetworkListOptions) (client.NetworkListResult, error) {
	return client.NetworkListResult{}, e.call("NetworkList")
}
func (e *countingEngine) NetworkCreate(context.Context, string, client.NetworkCreateOptions) (client.NetworkCreateResult, error) {
	return client.NetworkCreateResult{}, e.call("NetworkCreate")
}
func (e *countingEngine) NetworkConnect(context.Context, string, client.NetworkConnectOptions) (client.NetworkConnectResult, error) {
	return client.NetworkConnectResult{}, e.call("NetworkConnect")
}
func (e *countingEngine) VolumeInspect(context.Context, string, client.VolumeInspectOptions) (client.VolumeInspectResult, error) {
	return client.VolumeInspectResult{}, e.call("VolumeInspect")
}
func (e *countingEngine) VolumeCreate(context.Context, client.VolumeCreateOptions) (client.VolumeCreateResult, error) {
	return client.VolumeCreateResult{}, e.call("VolumeCreate")
}
func (e *countingEngine) Info(context.Context, client.InfoOptions) (client.SystemInfoResult, error) {
	return client.SystemInfoResult{}, e.call("Info")
}
func (e *countingEngine) ServiceList(context.Context, client.ServiceListOptions) (client.ServiceListResult, error) {
	return client.ServiceListResult{}, e.call("ServiceList")
}
func (e *countingEngine) ServiceInspect(context.Context, string, client.ServiceInspectOptions) (client.ServiceInspectResult, error) {
	return client.ServiceInspectResult{}, e.call("ServiceInspect")
}
func (e *countingEngine) ServiceUpdate(context.Context, string, client.ServiceUpdateOptions) (client.ServiceUpdateResult, error) {
	return client.ServiceUpdateResult{}, e.call("ServiceUpdate")
}
func (e *countingEngine) TaskList(context.Context, client.TaskListOptions) (client.TaskListResult, error) {
	return client.TaskListResult{}, e.call("TaskList")
}
func (e *countingEngine) DistributionInspect(context.Context, string, client.DistributionInspectOptions) (client.DistributionInspectResult, error) {
	return client.DistributionInspectResult{}, e.call("DistributionInspect")
}

// countingDeployer counts the requests that get past the HTTP layer into the deployer.
type countingDeployer struct {
	mu sync.Mutex
	n  int
	d  Deployer
}

func (c *countingDeployer) Deploy(ctx context.Context, req deployer.Request) (deployer.Ticket, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.d.Deploy(ctx, req)
}

func (c *countingDeployer) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestDockerHubAnswers covers every answer the Docker Hub webhook can get, through the real
// deployer (OWNER=acme, one configured project running acme/web:1.4.2) on an engine that only
// counts: nothing but a 202 may reach the engine, and requests the HTTP layer refuses never
// reach the deployer.
func TestDockerHubAnswers(t *testing.T) {
	dir := t.TempDir()
	composeYAML := "name: shop\nservices:\n  web:\n    image: acme/web:1.4.2\n  db:\n    image: busybox:1\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	push := string(fixture(t, "dockerhub-push.json"))
	const ok = "?secret=" + dockerHubURL
	tests := []struct {
		name, method, query, body string
		status                    int
		errIs, errHas             string // the whole error message, or a part of the answer
		deployer                  bool   // the request reaches the deployer
		services                  []string
	}{
		{name: "push of a tag a service runs", query: ok, body: push, status: 202, deployer: true, services: []string{"shop/web"}},
		{name: "push no service uses", query: ok, body: strings.Replace(push, `"tag": "1.4.2"`, `"tag": "9.9.9"`, 1), status: 200, deployer: true,
			errHas: `"reason":"no service in the compose project runs acme/web:9.9.9"`},
		{name: "wrong secret", query: "?secret=not-the-secret", body: push, status: 401, errIs: "unauthorized"},
		{name: "secret of another length", query: "?secret=" + dockerHubURL + "x", body: push, status: 401, errIs: "unauthorized"},
		{name: "no secret", body: push, status: 401, errIs: "unauthorized"},
		{name: "secret in another parameter", query: "?token=" + dockerHubURL, body: push, status: 401, errIs: "unauthorized"},
		{name: "namespace not in OWNER", query: ok, body: string(fixture(t, "dockerhub-push-foreign-namespace.json")), status: 403, deployer: true,
			errHas: "OWNER=acme does not allow namespace evil; set OWNER=acme,evil"},
		{name: "malformed JSON", query: ok, body: push[:len(push)/2], status: 400, errHas: "not a JSON object"},
		{name: "not JSON", query: ok, body: "push!", status: 400, errHas: "not a JSON object"},
		{name: "no tag", query: ok, body: `{"push_data":{"pusher":"a"},"repository":{"repo_name":"acme/web"}}`, status: 400, errHas: "lacks push_data.tag"},
		{name: "no repository", query: ok, body: `{"push_data":{"tag":"1"}}`, status: 400, errHas: "lacks repository.repo_name"},
		{name: "neither", query: ok, body: `{"push_data":{}}`, status: 400, errHas: "lacks repository.repo_name and push_data.tag"},
		{name: "push_data is not an object", query: ok, body: `{"push_data":"1.4.2","repository":{"repo_name":"acme/web"}}`, status: 400, errHas: "not a Docker Hub webhook"},
		{name: "invalid tag", query: ok, body: strings.Replace(push, `"tag": "1.4.2"`, `"tag": "../x"`, 1), status: 400, errHas: "is not a tag"},
		{name: "digest in the tag", query: ok, body: strings.Replace(push, `"tag": "1.4.2"`, `"tag": "latest@sha256:`+strings.Repeat("a", 64)+`"`, 1), status: 400, errHas: "no digest"},
		{name: "another registry's image", query: ok, body: strings.NewReplacer(`"repo_name": "acme/web"`, `"repo_name": "ghcr.io/acme/web"`, `"namespace": "acme"`, `"namespace": "ghcr.io"`).Replace(push), status: 403, errHas: "may deploy Docker Hub images only"},
		{name: "body over 1 MiB", query: ok, body: strings.Replace(push, `"images": []`, `"images": ["`+strings.Repeat("x", 1<<20)+`"]`, 1), status: 413, errIs: "request body is larger than 1 MiB"},
		{name: "GET", method: http.MethodGet, query: ok, status: 405},
		{name: "PUT", method: http.MethodPut, query: ok, body: push, status: 405},
		{name: "DELETE", method: http.MethodDelete, query: ok, status: 405},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eng := &countingEngine{}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// BACKEND=compose: in auto mode every accepted push also asks the engine (Info) whether it is a swarm manager.
			d := deployer.New(ctx, eng, deployer.Options{Owners: []string{"acme"}, Projects: []compose.Spec{{Dir: dir}}, Backend: deployer.BackendCompose})
			counted := &countingDeployer{d: d}
			srv := NewServer(Config{DockerHub: Secrets{dockerHubURL}}, counted, slog.New(slog.DiscardHandler))

			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			r := httptest.NewRequest(method, "/webhook"+tc.query, strings.NewReader(tc.body))
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			body, _ := io.ReadAll(w.Result().Body)
			if w.Code != tc.status {
				t.Fatalf("status %d %s, want %d", w.Code, body, tc.status)
			}
			if tc.errIs != "" && strings.TrimSpace(string(body)) != `{"error":"`+tc.errIs+`"}` {
				t.Errorf("answer %s, want exactly the error %q", body, tc.errIs)
			}
			if tc.errHas != "" && !strings.Contains(string(body), tc.errHas) {
				t.Errorf("answer %s does not say %q", body, tc.errHas)
			}
			if got := counted.count(); (got > 0) != tc.deployer {
				t.Errorf("the deployer got %d requests; want any: %v", got, tc.deployer)
			}
			if tc.status != http.StatusAccepted {
				if calls := eng.made(); len(calls) > 0 {
					t.Errorf("a %d answer made engine calls: %v", tc.status, calls)
				}
				return
			}
			for _, s := range tc.services {
				if !strings.Contains(string(body), `"`+s+`"`) {
					t.Errorf("202 answer %s does not name %s", body, s)
				}
			}
			// The accepted deploy runs in the background; it is the one that may use the engine.
			if err := d.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			// Reads may come first or run beside the pull (the service's containers, for a
			// crash's leftovers; whether its networks and volumes exist); the first call that
			// acts is the pull.
			reads := []string{"ContainerList", "NetworkList", "VolumeInspect"}
			calls := slices.DeleteFunc(eng.made(), func(c string) bool { return slices.Contains(reads, c) })
			if len(calls) == 0 || calls[0] != "ImagePull" {
				t.Errorf("the accepted deploy's engine calls %v, want the first one that acts to be ImagePull", eng.made())
			}
		})
	}
	t.Run("healthz", func(t *testing.T) {
		srv := NewServer(Config{DockerHub: Secrets{dockerHubURL}}, &recordingDeployer{}, slog.New(slog.DiscardHandler))
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if w.Code != http.StatusOK {
			t.Errorf("/healthz answered %d", w.Code)
		}
	})
}
func (e *countingEngine) ContainerWait(context.Context, string, client.ContainerWaitOptions) client.ContainerWaitResult {
	errs := make(chan error, 1)
	errs <- e.call("ContainerWait")
	return client.ContainerWaitResult{Error: errs}
}
func (e *countingEngine) ContainerLogs(context.Context, string, client.ContainerLogsOptions) (client.ContainerLogsResult, error) {
	return nil, e.call("ContainerLogs")
}
func (e *countingEngine) ExecCreate(context.Context, string, client.ExecCreateOptions) (client.ExecCreateResult, error) {
	return client.ExecCreateResult{}, e.call("ExecCreate")
}
func (e *countingEngine) ExecAttach(context.Context, string, client.ExecAttachOptions) (client.ExecAttachResult, error) {
	return client.ExecAttachResult{}, e.call("ExecAttach")
}
func (e *countingEngine) ExecInspect(context.Context, string, client.ExecInspectOptions) (client.ExecInspectResult, error) {
	return client.ExecInspectResult{}, e.call("ExecInspect")
}
