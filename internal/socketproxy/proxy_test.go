package socketproxy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestPolicyDecide(t *testing.T) {
	all := Policy{Exec: true, Swarm: true}
	cases := []struct {
		policy Policy
		method string
		target string
		allow  bool
		reason string // a fragment of the refusal
	}{
		{Policy{}, "GET", "/_ping", true, ""},
		{Policy{}, "HEAD", "/_ping", true, ""},
		{Policy{}, "GET", "/v1.41/version", true, ""},
		{Policy{}, "GET", "/v1.41/info", true, ""},
		{Policy{}, "GET", "/v1.41/events?filters=%7B%7D", true, ""},
		{Policy{}, "GET", "/v1.41/containers/json?all=1", true, ""},
		{Policy{}, "GET", "/v1.41/containers/abc/json", true, ""},
		{Policy{}, "POST", "/v1.41/containers/create?name=p-web-1", true, ""},
		{Policy{}, "POST", "/v1.41/containers/abc/start", true, ""},
		{Policy{}, "POST", "/v1.41/containers/abc/stop?t=10", true, ""},
		{Policy{}, "POST", "/v1.41/containers/abc/rename?name=x", true, ""},
		{Policy{}, "POST", "/v1.41/containers/abc/wait", true, ""},
		{Policy{}, "DELETE", "/v1.41/containers/abc?force=1", true, ""},
		{Policy{}, "POST", "/v1.41/images/create?fromImage=acme%2Fweb&tag=1", true, ""},
		{Policy{}, "GET", "/v1.41/images/127.0.0.1:5000/acme/web:1/json", true, ""},
		{Policy{}, "POST", "/v1.41/images/acme/web@sha256:abc/tag?repo=acme%2Fweb&tag=1", true, ""},
		{Policy{}, "DELETE", "/v1.41/images/acme/web:1", true, ""},
		{Policy{}, "GET", "/v1.41/networks?filters=x", true, ""},
		{Policy{}, "GET", "/v1.41/networks/p_default", true, ""},
		{Policy{}, "POST", "/v1.41/networks/create", true, ""},
		{Policy{}, "POST", "/v1.41/networks/p_default/connect", true, ""},
		{Policy{}, "GET", "/v1.41/volumes/p_data", true, ""},
		{Policy{}, "POST", "/v1.41/volumes/create", true, ""},

		{Policy{}, "POST", "/v1.41/containers/abc/exec", false, "SOCKET_PROXY_EXEC=true"},
		{Policy{}, "POST", "/v1.41/exec/abc/start", false, "SOCKET_PROXY_EXEC=true"},
		{Policy{Exec: true}, "POST", "/v1.41/containers/abc/exec", true, ""},
		{Policy{}, "GET", "/v1.41/services", false, "SOCKET_PROXY_SWARM=true"},
		{Policy{}, "POST", "/v1.41/services/s/update?version=3", false, "SOCKET_PROXY_SWARM=true"},
		{Policy{Swarm: true}, "POST", "/v1.41/services/s/update?version=3", true, ""},
		{Policy{Swarm: true}, "GET", "/v1.41/tasks?filters=x", true, ""},

		{all, "POST", "/v1.41/build", false, "never uses"},
		{all, "POST", "/build", false, "never uses"},
		{all, "GET", "/v1.41/plugins", false, "never uses"},
		{all, "POST", "/v1.41/plugins/pull", false, "never uses"},
		{all, "POST", "/v1.41/system/prune", false, "never uses"},
		{all, "POST", "/v1.41/containers/prune", false, "never uses"},
		{all, "POST", "/v1.41/images/prune", false, "never uses"},
		{all, "GET", "/v1.41/secrets", false, "never uses"},
		{all, "POST", "/v1.41/swarm/init", false, "never uses"},
		{all, "POST", "/v1.41/containers/abc/attach", false, "never uses"},
		{all, "PUT", "/v1.41/containers/abc/archive?path=/", false, "never uses"},
		{all, "POST", "/v1.41/containers/abc/update", false, "never uses"},
		{all, "POST", "/v1.41/containers/abc/kill", false, "never uses"},
		{all, "GET", "/v1.41/containers/abc/export", false, "never uses"},
		{all, "POST", "/v1.41/images/load", false, "never uses"},
		{all, "GET", "/v1.41/images/get", false, "never uses"},
		{all, "POST", "/v1.41/images/acme/web/push", false, "never uses"},
		{all, "POST", "/v1.41/commit", false, "never uses"},
		{all, "POST", "/v1.41/auth", false, "never uses"},
		{all, "DELETE", "/v1.41/networks/p_default", false, "never uses"},
		{all, "DELETE", "/v1.41/volumes/p_data", false, "never uses"},
		{all, "POST", "/v1.41/images/create?fromSrc=-", false, "fromSrc"},
		{all, "GET", "/v1.41/containers/json/../../build", false, "canonical"},
		{all, "POST", "/v1.41/containers/abc/..%2F..%2Fbuild/start", false, "canonical"},
		{all, "POST", "/v1.41//build", false, "canonical"},
		{all, "GET", "/v1.41/v1.41/containers/json", false, "never uses"},

		{Policy{ReadOnly: true}, "GET", "/v1.41/containers/json", true, ""},
		{Policy{ReadOnly: true}, "POST", "/v1.41/images/create?fromImage=a", false, "SOCKET_PROXY_READONLY"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, "http://docker"+c.target, nil)
		d := c.policy.decide(r)
		if allowed := d.reason == ""; allowed != c.allow || !strings.Contains(d.reason, c.reason) {
			t.Errorf("%+v %s %s: reason %q, want allowed=%v with %q", c.policy, c.method, c.target, d.reason, c.allow, c.reason)
		}
	}
}

// TestSocketProxyForwardsAndStreams runs the proxy in front of a stand-in engine on a unix
// socket: allowed calls reach it with their path intact and stream, refused ones never do.
func TestSocketProxyForwardsAndStreams(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []string
	release := make(chan struct{})
	engine := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Method+" "+r.URL.RequestURI())
		mu.Unlock()
		if r.URL.Path == "/v1.41/events" {
			w.WriteHeader(http.StatusOK)
			_, _ = w.Write([]byte(`{"status":"first"}` + "\n"))
			w.(http.Flusher).Flush()
			<-release // the second event comes only after the client saw the first
			_, _ = w.Write([]byte(`{"status":"second"}` + "\n"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"ok":"yes"}` + "\n"))
	})}
	go func() { _ = engine.Serve(ln) }()
	t.Cleanup(func() { engine.Close() })

	var logs bytes.Buffer
	proxy := httptest.NewServer(New(sock, Policy{}, slog.New(slog.NewTextHandler(&logs, nil))))
	t.Cleanup(proxy.Close)

	resp, err := http.Get(proxy.URL + "/v1.41/containers/json?all=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("list containers: %s", resp.Status)
	}

	resp, err = http.Post(proxy.URL+"/v1.41/build", "application/x-tar", nil)
	if err != nil {
		t.Fatal(err)
	}
	var refusal struct{ Message string }
	_ = json.NewDecoder(resp.Body).Decode(&refusal)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(refusal.Message, "POST /build") {
		t.Errorf("build answered %s %q, want 403 naming POST /build", resp.Status, refusal.Message)
	}
	if !strings.Contains(logs.String(), "socket proxy refused") {
		t.Errorf("the refusal was not logged:\n%s", logs.String())
	}

	resp, err = http.Get(proxy.URL + "/v1.41/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "first") {
		t.Fatalf("first event: %q, %v", line, err)
	}
	close(release)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "second") {
		t.Fatalf("second event: %q, %v", line, err)
	}
	want := []string{"GET /v1.41/containers/json?all=1", "GET /v1.41/events"}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Errorf("the engine saw %q, want %q", seen, want)
	}
}
