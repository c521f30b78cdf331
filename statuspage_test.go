package main

import (
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/internal/browsertest"
)

// TestStatusPageOnEngine: the status page of a berth serving a real project, in headless
// Chromium: log in, the row shows the running image's version label; "Deploy now" deploys the
// image pushed meanwhile, its steps appear under "Running now" as they happen and the timeline
// gains its record without a reload; "Roll back" puts the first image back. No request leaves
// berth's origin and the page raises no CSP violation; both themes are screenshot.
func TestStatusPageOnEngine(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	b := browsertest.Start(t)
	tag := deployertest.UniqueTag("page")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1", "LABEL org.opencontainers.image.version=1.0.0")
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n", tag))
	deployertest.ComposeUp(t, compose, dir)
	url, _ := startBerth(t, map[string]string{"PROJECT_DIR": dir, "API_TOKEN": testToken, "HEALTH_SETTLE": "1s"})

	b.Do("Page.navigate", map[string]any{"url": url + "/ui/"})
	b.WaitFor(`!!document.querySelector("input[name=token]")`)
	b.Eval(fmt.Sprintf(`document.querySelector("input[name=token]").value = %q; document.querySelector("form").submit(); true`, testToken))
	row := fmt.Sprintf(`document.querySelector('#services tr[data-service="%s/web"]')`, project)
	b.WaitFor(row + `?.innerText.includes("1.0.0")`)
	// Everything that ever shows under "Running now" is kept, however briefly it showed.
	b.Eval(`window.__live = []; new MutationObserver(() => window.__live.push(document.getElementById("live").innerText))
		.observe(document.getElementById("live"), {childList: true, subtree: true, characterData: true}); true`)

	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2", "LABEL org.opencontainers.image.version=2.0.0")
	press := func(form, verb string) {
		t.Helper()
		b.Eval(row + `.querySelector("form.` + form + ` button").click(); true`)
		b.WaitFor(`document.getElementById("flash").textContent.startsWith("` + verb + ` ")`)
		flash := b.Eval(`document.getElementById("flash").textContent`)
		m := regexp.MustCompile(`^` + verb + ` ([0-9a-f]+) queued`).FindStringSubmatch(flash)
		if m == nil {
			t.Fatalf("after %s the page says %q", verb, flash)
		}
		b.WaitFor(fmt.Sprintf(`!!document.getElementById("deploy-%s-%s-web")`, m[1], project))
	}
	press("deploy:not(.rollback)", "Deploy")
	b.WaitFor(row + `.innerText.includes("2.0.0")`)
	if live := b.Eval(`window.__live.join("\n")`); !strings.Contains(live, "pull acme/web:"+tag) || !strings.Contains(live, "web-1") {
		t.Errorf("the deploy's steps never showed under Running now: %q", live)
	}
	press("rollback", "Roll-back")
	b.WaitFor(row + `.innerText.includes("1.0.0")`)

	b.Screenshots("status-page-engine")
	if v := b.CSPViolations(); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, u := range b.Requested() {
		if !strings.HasPrefix(u, url+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s, outside berth's origin", u)
		}
	}
}
