package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestWatchApproval runs berth serve on a service labelled berth.watch=true and
// berth.approve=manual: a new digest in the registry waits for approval (the status API and
// `berth status` say so), a rejection through POST /api/approve is recorded and deploys
// nothing, and the next digest, approved with `berth approve`, is deployed. The metrics count
// the checks.
func TestWatchApproval(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	reg, tag := deployertest.Registry(), deployertest.UniqueTag("watchapprove")
	push := func(body string) { deployertest.PushHTTPImage(t, eng, "acme/web", tag, body) }
	push("version 1")
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  web:\n    image: %s/acme/web:%s\n    init: true\n"+
		"    labels: {berth.watch: 'true', berth.watch.interval: 1s, berth.approve: manual}\n", reg, tag))
	deployertest.ComposeUp(t, cli, dir)
	env := map[string]string{"PROJECT_DIR": dir, "API_TOKEN": testToken, "STATE_DIR": t.TempDir(), "HEALTH_SETTLE": "1s"}
	url, _ := startBerth(t, env)
	key := project + "/web"

	watchOf := func() (w struct{ Waiting, Available, Running string }) {
		var ans struct {
			Services []struct {
				Watch *struct {
					Waiting   string `json:"waiting"`
					Available string `json:"available_digest"`
					Running   string `json:"running_digest"`
				}
			}
		}
		apiGet(t, url+"/api/services", testToken, &ans)
		if len(ans.Services) == 1 && ans.Services[0].Watch != nil {
			w.Waiting, w.Available, w.Running = ans.Services[0].Watch.Waiting, ans.Services[0].Watch.Available, ans.Services[0].Watch.Running
		}
		return w
	}
	approve := func(body string) int {
		req, _ := http.NewRequest(http.MethodPost, url+"/api/approve", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	runCLI := func(args ...string) (string, error) {
		getenv, environ := testEnv(map[string]string{"API_TOKEN": testToken, "BERTH_URL": url})
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"berth"}, args...), getenv, environ, &out, &out)
		return out.String(), err
	}
	running := func() string {
		res, err := eng.ContainerInspect(context.Background(), project+"-web-1", client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return res.Container.Image
	}
	v1 := running()

	push("version 2")
	v2 := deployertest.ManifestDigest(t, reg, "acme/web", tag)
	deployertest.Eventually(t, "the update held for approval", 30*time.Second, func() bool {
		w := watchOf()
		return w.Waiting == "approval" && w.Available == v2
	})
	if out, err := runCLI("status"); err != nil || !strings.Contains(out, "waits for approval: berth approve "+key) {
		t.Errorf("berth status: %v\n%s", err, out)
	}
	for body, want := range map[string]int{`{"service": "nope"}`: 404, `{"service": ""}`: 400, `{"servce": "web"}`: 400} {
		if code := approve(body); code != want {
			t.Errorf("POST /api/approve %s: %d, want %d", body, code, want)
		}
	}
	if code := approve(`{"service": "web", "reject": true}`); code != http.StatusOK {
		t.Fatalf("reject: %d", code)
	}
	deployertest.Eventually(t, "the rejection in the status", 30*time.Second, func() bool { return watchOf().Waiting == "rejected" })
	var deploys struct {
		Deploys []struct{ Outcome, Source, Digest string }
	}
	apiGet(t, url+"/api/deploys", testToken, &deploys)
	outcomes := fmt.Sprint(deploys.Deploys)
	if !strings.Contains(outcomes, "{declined watch "+v2+"}") || !strings.Contains(outcomes, "{held watch "+v2+"}") || strings.Contains(outcomes, "deployed") {
		t.Errorf("history %s, want held and declined records of %s and no deploy", outcomes, v2)
	}
	if running() != v1 {
		t.Fatal("a rejected update was deployed")
	}

	push("version 3")
	v3 := deployertest.ManifestDigest(t, reg, "acme/web", tag)
	deployertest.Eventually(t, "the next update held for approval", 30*time.Second, func() bool {
		w := watchOf()
		return w.Waiting == "approval" && w.Available == v3
	})
	if out, err := runCLI("approve", key); err != nil || !strings.Contains(out, "approved "+v3) {
		t.Fatalf("berth approve %s: %v\n%s", key, err, out)
	}
	// The container is renamed during the recreate: inspect it until it is back, on the new image.
	deployertest.Eventually(t, "the approved deploy", 60*time.Second, func() bool {
		res, err := eng.ContainerInspect(context.Background(), project+"-web-1", client.ContainerInspectOptions{})
		return err == nil && res.Container.Image != v1 && watchOf().Running == v3
	})
	if n := metricValue(scrape(t, url), "berth_watch_checks_total", map[string]string{"result": "ok"}); n < 3 {
		t.Errorf("berth_watch_checks_total{result=ok} = %v, want the checks counted", n)
	}
}
