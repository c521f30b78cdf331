package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/internal/notify"
)

const testToken = "status-token-0123456789abcdef"

// receiver is a notification endpoint that keeps what it was sent.
type receiver struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.bodies = append(r.bodies, string(b))
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bodies...)
}

// apiGet fetches path from berth's status API with token and decodes the JSON into v.
func apiGet(t *testing.T, url, token string, v any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var parser expfmt.TextParser
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// metricValue is the value of the sample of name whose labels include want, or -1.
func metricValue(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	f, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range f.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			match = match && labels[k] == v
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// TestOperatorSurface deploys through a webhook once successfully and once failing, and checks
// what an operator sees: the status API, the history (also after a restart), the metrics, and
// the notifications in every format, while a notification URL that never answers holds
// nothing up.
func TestOperatorSurface(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("ops")
	label := func(v string) string {
		return fmt.Sprintf(`LABEL org.opencontainers.image.version=%q org.opencontainers.image.revision="rev-%s"`, v, v)
	}
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1", label("1.0.0"))
	project := strings.ReplaceAll(tag, "-", "")
	composeFile := func(tag string) string {
		return fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n    ports: [\"127.0.0.1::80\"]\n"+
			"  off:\n    image: busybox:1\n    init: true\n    command: [sleep, \"3600\"]\n    labels: {berth.enable: \"false\"}\n", tag)
	}
	dir := deployertest.WriteProject(t, project, composeFile(tag))
	deployertest.ComposeUp(t, compose, dir)

	plain, slack, discord := newReceiver(t), newReceiver(t), newReceiver(t)
	release := make(chan struct{})
	hungSeen := make(chan struct{}, 8)
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hungSeen <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); hung.Close() })
	stateDir := t.TempDir()
	env := map[string]string{
		"PROJECT_DIR": dir, "STATE_DIR": stateDir, "API_TOKEN": testToken, "NOTIFY_TIMEOUT": "1h", "SHUTDOWN_TIMEOUT": "2s",
		// The dead URL first: its sender must not hold up the others.
		"NOTIFY_URLS": hung.URL + "/dead," + plain.srv.URL + "/json,slack+" + slack.srv.URL + "/s,discord+" + discord.srv.URL + "/d",
	}
	url, _, stop := startBerthStoppable(t, env)

	before := scrape(t, url)
	if v := metricValue(before, "berth_build_info", nil); v != 1 {
		t.Errorf("berth_build_info = %v, want 1", v)
	}
	if v := metricValue(before, "berth_queue_depth", nil); v != 0 {
		t.Errorf("berth_queue_depth = %v before any push, want 0", v)
	}

	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2", label("2.0.0"))
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s", status, body)
	}
	var deploys struct{ Deploys []deployer.Record }
	deployertest.Eventually(t, "the deploy in the history", 60*time.Second, func() bool {
		apiGet(t, url+"/api/deploys", testToken, &deploys)
		return len(deploys.Deploys) == 1
	})
	if r := deploys.Deploys[0]; r.Outcome != deployer.OutcomeDeployed || r.Service != "web" || r.Project != project || r.Tag != tag || r.Source != "dockerhub" {
		t.Errorf("history record = %+v, want web deployed from dockerhub", r)
	}
	select { // the dead URL has the event and holds it …
	case <-hungSeen:
	case <-time.After(30 * time.Second):
		t.Fatal("the hung notification URL was never called")
	}
	deployertest.Eventually(t, "the notifications in every format", 30*time.Second, func() bool {
		return len(plain.got()) == 1 && len(slack.got()) == 1 && len(discord.got()) == 1
	}) // … while the others got theirs: it delays nothing.
	var ev notify.Event
	if err := json.Unmarshal([]byte(plain.got()[0]), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Outcome != "deployed" || ev.Namespace != "acme" || ev.Repository != "acme/web" || ev.Tag != tag || ev.Service != "web" ||
		ev.Source != "dockerhub" || ev.Pusher == "" || ev.Duration <= 0 {
		t.Errorf("json event = %+v", ev)
	}
	var chat map[string]string
	if err := json.Unmarshal([]byte(slack.got()[0]), &chat); err != nil || !strings.Contains(chat["text"], project+"/web deployed acme/web:"+tag) {
		t.Errorf("slack payload = %s", slack.got()[0])
	}
	chat = nil
	if err := json.Unmarshal([]byte(discord.got()[0]), &chat); err != nil || !strings.Contains(chat["content"], project+"/web deployed") {
		t.Errorf("discord payload = %s", discord.got()[0])
	}

	var services struct{ Services []deployer.ServiceStatus }
	if code := apiGet(t, url+"/api/services", testToken, &services); code != http.StatusOK || len(services.Services) != 2 {
		t.Fatalf("/api/services answered %d with %d services, want 200 with web and off", code, len(services.Services))
	}
	var web deployer.ServiceStatus
	if code := apiGet(t, url+"/api/services/"+project+"/web", testToken, &web); code != http.StatusOK {
		t.Fatalf("/api/services/%s/web answered %d", project, code)
	}
	img, err := eng.ImageInspect(context.Background(), "acme/web:"+tag)
	if err != nil {
		t.Fatal(err)
	}
	if web.ImageID != img.ID || web.Image != "acme/web:"+tag || !strings.HasPrefix(web.RepoDigest, "acme/web@sha256:") ||
		web.ImageLabels["org.opencontainers.image.version"] != "2.0.0" || web.ImageLabels["org.opencontainers.image.revision"] != "rev-2.0.0" ||
		web.ImageCreated.IsZero() || !web.Deploys || web.TagPolicy != "exact" {
		t.Errorf("web status = %+v, want image %s version 2.0.0", web, img.ID)
	}
	if len(web.Containers) != 1 || web.Containers[0].Name != project+"-web-1" || web.Containers[0].State != "running" || web.Containers[0].ImageID != img.ID {
		t.Errorf("web containers = %+v", web.Containers)
	}
	var off deployer.ServiceStatus
	if apiGet(t, url+"/api/services/off", testToken, &off); off.Deploys {
		t.Errorf("off (berth.enable=false) reports deploys=true")
	}
	for _, c := range []struct {
		path, token string
		want        int
	}{
		{"/api/services", "", http.StatusUnauthorized},
		{"/api/deploys", "wrong-token-0123456789", http.StatusUnauthorized},
		{"/api/services/nothere", testToken, http.StatusNotFound},
		{"/api/deploys?limit=0", testToken, http.StatusBadRequest},
	} {
		if code := apiGet(t, url+c.path, c.token, nil); code != c.want {
			t.Errorf("GET %s (token %q) = %d, want %d", c.path, c.token, code, c.want)
		}
	}

	// A push of a tag the registry lacks fails; the old container keeps serving.
	missing := tag + "-missing"
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(composeFile(missing)), 0o644); err != nil {
		t.Fatal(err)
	}
	if status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, missing)); status != http.StatusAccepted {
		t.Fatalf("webhook answered %d %s", status, body)
	}
	deployertest.Eventually(t, "the failed deploy in the history", 60*time.Second, func() bool {
		apiGet(t, url+"/api/deploys", testToken, &deploys)
		return len(deploys.Deploys) == 2
	})
	failed := deploys.Deploys[0]
	if failed.Outcome != deployer.OutcomeFailed || failed.Tag != missing || !strings.Contains(failed.Error, "pull") {
		t.Errorf("newest record = %+v, want the failed pull of %s", failed, missing)
	}
	deployertest.Eventually(t, "the failure notification", 30*time.Second, func() bool { return len(plain.got()) == 2 })
	if err := json.Unmarshal([]byte(plain.got()[1]), &ev); err != nil || ev.Outcome != "failed" || ev.Error == "" {
		t.Errorf("failure event = %s", plain.got()[1])
	}

	after := scrape(t, url)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"berth_webhook_requests_total", map[string]string{"source": "dockerhub", "code": "202"}, 2},
		{"berth_deploys_total", map[string]string{"service": project + "/web", "outcome": "deployed"}, 1},
		{"berth_deploys_total", map[string]string{"service": project + "/web", "outcome": "failed"}, 1},
		{"berth_deploy_duration_seconds", map[string]string{"outcome": "deployed"}, 1},
		{"berth_queue_depth", nil, 0},
	} {
		if got := metricValue(after, c.name, c.labels); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if ts := metricValue(after, "berth_last_successful_deploy_timestamp_seconds", map[string]string{"service": project + "/web"}); ts < float64(deploys.Deploys[1].Started.Unix()) {
		t.Errorf("last successful deploy timestamp = %v, want at least the deploy's start %d", ts, deploys.Deploys[1].Started.Unix())
	}

	// A restart keeps the history and sees the same running service.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	url, _ = startBerth(t, env)
	var again struct{ Deploys []deployer.Record }
	apiGet(t, url+"/api/deploys", testToken, &again)
	if len(again.Deploys) != 2 || again.Deploys[0].ID != failed.ID || again.Deploys[1].ID != deploys.Deploys[1].ID {
		t.Errorf("history after restart = %+v, want the two deploys", again.Deploys)
	}
	var webAgain deployer.ServiceStatus
	apiGet(t, url+"/api/services/web", testToken, &webAgain)
	if len(webAgain.Containers) != 1 || webAgain.Containers[0].ImageID != img.ID || webAgain.Containers[0].State != "running" {
		t.Errorf("web after the failed deploy and a restart = %+v, want version 2 running", webAgain.Containers)
	}
}

// TestSemverTagPolicy: a service labelled berth.tag-policy=semver takes a push of its moving tag
// only when the image's version label is greater than the running one's; a refused push leaves
// the container and the local tag on the running image.
func TestSemverTagPolicy(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag := deployertest.UniqueTag("semver")
	version := func(v string) string { return fmt.Sprintf("LABEL org.opencontainers.image.version=%q", v) }
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1.1.0", version("1.1.0"))
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n    labels: {berth.tag-policy: semver}\n", tag))
	deployertest.ComposeUp(t, compose, dir)
	url, _ := startBerth(t, map[string]string{"PROJECT_DIR": dir, "API_TOKEN": testToken})
	runningImage := func() string {
		var st deployer.ServiceStatus
		apiGet(t, url+"/api/services/web", testToken, &st)
		if len(st.Containers) != 1 {
			t.Fatalf("web containers = %+v", st.Containers)
		}
		return st.Containers[0].ImageID
	}
	v110 := runningImage()
	var deploys struct{ Deploys []deployer.Record }
	pushAndWait := func(body, v string, n int) deployer.Record {
		deployertest.PushHTTPImage(t, eng, "acme/web", tag, body, version(v))
		if status, answer := post(t, url+"/webhook?secret="+testSecret,
			strings.Replace(dockerHubPayload(t, tag), `"pushed_at": 1795183407`, fmt.Sprintf(`"pushed_at": %d`, 1795183407+n), 1)); status != http.StatusAccepted {
			t.Fatalf("webhook answered %d %s", status, answer)
		}
		deployertest.Eventually(t, "the deploy record", 60*time.Second, func() bool {
			apiGet(t, url+"/api/deploys", testToken, &deploys)
			return len(deploys.Deploys) == n
		})
		return deploys.Deploys[0]
	}
	if r := pushAndWait("version 1.0.0", "1.0.0", 1); r.Outcome != deployer.OutcomeSkipped || !strings.Contains(r.Error, "not greater than running version 1.1.0") {
		t.Errorf("older version: %+v, want skipped", r)
	}
	if img, err := eng.ImageInspect(ctx, "acme/web:"+tag); err != nil || img.ID != v110 || runningImage() != v110 {
		t.Errorf("after a refused push the tag or the container left version 1.1.0 (err %v)", err)
	}
	if r := pushAndWait("version 1.2.0", "1.2.0", 2); r.Outcome != deployer.OutcomeDeployed {
		t.Errorf("newer version: %+v, want deployed", r)
	}
	if runningImage() == v110 {
		t.Error("version 1.2.0 was not deployed")
	}
}
