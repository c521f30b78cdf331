package handler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/internal/browsertest"
)

// TestPageInChromium drives Debian's headless Chromium over the DevTools protocol: log in
// with the form, see the services table, press "deploy now" and "roll back", watch a running
// deploy's steps and then the timeline gain its record without a reload, screenshot both
// themes; no request may leave berth's origin and the page must raise no CSP violation.
// Screenshots go to $BERTH_TEST_ARTIFACTS when set.
func TestPageInChromium(t *testing.T) {
	b := browsertest.Start(t)
	srv, ops, hub := newPageServer(t)

	b.Do("Page.navigate", map[string]any{"url": srv.URL + "/ui/"})
	b.WaitFor(`!!document.querySelector("input[name=token]")`)
	b.Eval(fmt.Sprintf(`document.querySelector("input[name=token]").value = %q; document.querySelector("form").submit(); true`, pageToken))
	b.WaitFor(`document.querySelectorAll("#services tr[data-service]").length === 1`)
	row := b.Eval(`document.querySelector("#services tr[data-service]").innerText`)
	for _, want := range []string{"shop/", "web", "1.4.2", "running (healthy)", "deployed", "not retried"} {
		if !strings.Contains(row, want) {
			t.Errorf("the services row lacks %q: %q", want, row)
		}
	}

	b.Eval(`document.querySelector("form.deploy button").click(); true`)
	b.WaitFor(`document.getElementById("flash").textContent.includes("queued")`)
	if got := ops.asked(); len(got) != 1 || got[0] != [2]string{"shop/web", ""} {
		t.Errorf("the button asked for %v, want one deploy of shop/web", got)
	}
	b.Eval(`document.querySelector("form.rollback button").click(); true`)
	b.WaitFor(`document.getElementById("flash").textContent.startsWith("Roll-back d1 queued")`)
	if got := ops.asked(); len(got) != 2 || got[1] != [2]string{"shop/web", "previous"} {
		t.Errorf("the roll-back button asked for %v, want a roll-back of shop/web", got)
	}

	// A running deploy's steps appear as they happen: the pull's progress, then each step.
	// The page's stream may still be connecting, so each event is sent until it shows.
	pull := deployer.StepEvent{Deploy: "r2", Project: "shop", Service: "web", Step: deployer.Step{Name: "pull", Container: "registry.test/shop/web:1.5"},
		Pull: &deployer.PullProgress{Layers: 3, LayersDone: 1, Current: 5e6, Total: 12e6}}
	b.SendUntil(func() { hub.Step(pull) }, `document.getElementById("live").innerText.includes("1/3 layers, 5.0 MB of 12.0 MB")`)
	started := deployer.StepEvent{Deploy: "r2", Project: "shop", Service: "web", Step: deployer.Step{Name: "start", Container: "shop-web-1"}}
	b.SendUntil(func() { hub.Step(started) }, `document.getElementById("live").innerText.includes("start shop-web-1 …")`)
	if v := b.Eval(`document.getElementById("live").hidden`); v != "false" {
		t.Errorf("the running deploy's section is hidden: %s", v)
	}

	ops.mu.Lock()
	ops.records = append([]deployer.Record{{ID: "r2", Project: "shop", Service: "web", Repository: "registry.test/shop/web", Tag: "1.5",
		Started: time.Unix(1795183500, 0), Outcome: deployer.OutcomeRolledBack, Error: "unhealthy after start"}}, ops.records...)
	ops.mu.Unlock()
	hub.Publish(ops.records[0])
	b.WaitFor(`!!document.getElementById("deploy-r2-shop-web")`)
	b.WaitFor(`document.getElementById("live").hidden`)

	b.Screenshots("status-page")
	if v := b.CSPViolations(); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, u := range b.Requested() {
		if !strings.HasPrefix(u, srv.URL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s, outside berth's origin", u)
		}
	}
}
