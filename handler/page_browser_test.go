package handler

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// TestPageInChromium drives Debian's headless Chromium over the DevTools protocol: log in
// with the form, see the services table, press "deploy now", watch the timeline gain a
// record without a reload, screenshot both themes; no request may leave berth's origin and
// the page must raise no CSP violation. Screenshots go to $BERTH_TEST_ARTIFACTS when set.
func TestPageInChromium(t *testing.T) {
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		t.Skip("chromium is not installed (apt-get install -y chromium); the browser test is skipped")
	}
	srv, ops, hub := newPageServer(t)
	b := startBrowser(t, bin)

	b.do("Page.enable", nil)
	b.do("Network.enable", nil)
	b.do("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
	b.do("Page.navigate", map[string]any{"url": srv.URL + "/ui/"})
	b.waitFor(`!!document.querySelector("input[name=token]")`)
	b.eval(fmt.Sprintf(`document.querySelector("input[name=token]").value = %q; document.querySelector("form").submit(); true`, pageToken))
	b.waitFor(`document.querySelectorAll("#services tr[data-service]").length === 1`)
	row := b.eval(`document.querySelector("#services tr[data-service]").innerText`)
	for _, want := range []string{"shop/", "web", "1.4.2", "running (healthy)", "deployed", "not retried"} {
		if !strings.Contains(row, want) {
			t.Errorf("the services row lacks %q: %q", want, row)
		}
	}

	b.eval(`document.querySelector("form.deploy button").click(); true`)
	b.waitFor(`document.getElementById("flash").textContent.includes("queued")`)
	if got := ops.asked(); len(got) != 1 || got[0] != [2]string{"shop/web", ""} {
		t.Errorf("the button asked for %v, want one deploy of shop/web", got)
	}

	b.eval(`document.querySelector("form.rollback button").click(); true`)
	b.waitFor(`document.getElementById("flash").textContent.startsWith("Roll-back d1 queued")`)
	if got := ops.asked(); len(got) != 2 || got[1] != [2]string{"shop/web", "previous"} {
		t.Errorf("the roll-back button asked for %v, want a roll-back of shop/web", got)
	}

	// A running deploy's steps appear as they happen: the pull's progress, then each step.
	// The page's stream may still be connecting, so each event is sent until it shows.
	pull := deployer.StepEvent{Deploy: "r2", Project: "shop", Service: "web", Step: deployer.Step{Name: "pull", Container: "registry.test/shop/web:1.5"},
		Pull: &deployer.PullProgress{Layers: 3, LayersDone: 1, Current: 5e6, Total: 12e6}}
	b.sendUntil(func() { hub.Step(pull) }, `document.getElementById("live").innerText.includes("1/3 layers, 5.0 MB of 12.0 MB")`)
	started := deployer.StepEvent{Deploy: "r2", Project: "shop", Service: "web", Step: deployer.Step{Name: "start", Container: "shop-web-1"}}
	b.sendUntil(func() { hub.Step(started) }, `document.getElementById("live").innerText.includes("start shop-web-1 …")`)
	if v := b.eval(`document.getElementById("live").hidden`); v != "false" {
		t.Errorf("the running deploy's section is hidden: %s", v)
	}

	ops.mu.Lock()
	ops.records = append([]deployer.Record{{ID: "r2", Project: "shop", Service: "web", Repository: "registry.test/shop/web", Tag: "1.5",
		Started: time.Unix(1795183500, 0), Outcome: deployer.OutcomeRolledBack, Error: "unhealthy after start"}}, ops.records...)
	ops.mu.Unlock()
	hub.Publish(ops.records[0])
	b.waitFor(`!!document.getElementById("deploy-r2-shop-web")`)
	b.waitFor(`document.getElementById("live").hidden`)

	dir := os.Getenv("BERTH_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	for _, theme := range []string{"light", "dark"} {
		b.do("Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": theme}}})
		var shot struct{ Data string }
		b.decode(b.do("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
		png, _ := base64.StdEncoding.DecodeString(shot.Data)
		path := filepath.Join(dir, "status-page-"+theme+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s (%d bytes)", path, len(png))
	}
	if v := b.eval(`JSON.stringify(window.__csp)`); v != "[]" {
		t.Errorf("CSP violations: %s", v)
	}
	for _, u := range b.requested() {
		if !strings.HasPrefix(u, srv.URL+"/") && !strings.HasPrefix(u, "data:") {
			t.Errorf("the page requested %s, outside berth's origin", u)
		}
	}
}

// browser is one headless Chromium tab spoken to over --remote-debugging-pipe.
type browser struct {
	t       *testing.T
	in      *os.File // to the browser (its fd 3)
	session string
	mu      sync.Mutex
	next    int
	waiting map[int]chan json.RawMessage
	urls    []string
}

func startBrowser(t *testing.T, bin string) *browser {
	t.Helper()
	toBrowser, in, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out, fromBrowser, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
		"--disable-extensions", "--remote-debugging-pipe", "--user-data-dir="+t.TempDir(), "--window-size=1024,768", "about:blank")
	cmd.ExtraFiles = []*os.File{toBrowser, fromBrowser}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	toBrowser.Close()
	fromBrowser.Close()
	b := &browser{t: t, in: in, waiting: map[int]chan json.RawMessage{}}
	go b.read(out)
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		_, _ = in.Write([]byte(`{"id":999999,"method":"Browser.close"}` + "\x00"))
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		in.Close()
		if t.Failed() {
			t.Logf("chromium's stderr:\n%s", stderr.String())
		}
	})
	var target struct{ TargetID string }
	b.decode(b.do("Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var attached struct{ SessionID string }
	b.decode(b.do("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &attached)
	b.session = attached.SessionID
	return b
}

// read routes the browser's answers to their callers and keeps the URLs the page requested.
func (b *browser) read(out *os.File) {
	r := bufio.NewReader(out)
	for {
		msg, err := r.ReadBytes(0)
		if err != nil {
			return
		}
		var m struct {
			ID     int
			Method string
			Result json.RawMessage
			Error  *struct{ Message string }
			Params struct{ Request struct{ URL string } }
		}
		if json.Unmarshal(msg[:len(msg)-1], &m) != nil {
			continue
		}
		b.mu.Lock()
		if m.Method == "Network.requestWillBeSent" {
			b.urls = append(b.urls, m.Params.Request.URL)
		}
		ch := b.waiting[m.ID]
		delete(b.waiting, m.ID)
		b.mu.Unlock()
		if ch != nil {
			if m.Error != nil {
				m.Result, _ = json.Marshal(map[string]string{"cdpError": m.Error.Message})
			}
			ch <- m.Result
		}
	}
}

// do sends one DevTools command to the tab (or the browser, before attaching) and waits for its answer.
func (b *browser) do(method string, params any) json.RawMessage {
	b.t.Helper()
	b.mu.Lock()
	b.next++
	id, ch := b.next, make(chan json.RawMessage, 1)
	b.waiting[id] = ch
	b.mu.Unlock()
	msg := map[string]any{"id": id, "method": method, "params": params}
	if b.session != "" {
		msg["sessionId"] = b.session
	}
	raw, _ := json.Marshal(msg)
	if _, err := b.in.Write(append(raw, 0)); err != nil {
		b.t.Fatalf("%s: %v", method, err)
	}
	select {
	case res := <-ch:
		if bytes.Contains(res, []byte(`"cdpError"`)) {
			b.t.Fatalf("%s: %s", method, res)
		}
		return res
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer from chromium", method)
		return nil
	}
}

func (b *browser) decode(raw json.RawMessage, v any) {
	b.t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("decode %s: %v", raw, err)
	}
}

// eval evaluates expr in the page and returns its value as text.
func (b *browser) eval(expr string) string {
	b.t.Helper()
	var res struct {
		Result           struct{ Value any }
		ExceptionDetails *struct{ Text string }
	}
	b.decode(b.do("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res)
	if res.ExceptionDetails != nil {
		return "exception: " + res.ExceptionDetails.Text
	}
	return fmt.Sprint(res.Result.Value)
}

// waitFor polls expr until it is true, at most 100 times a tenth of a second apart.
func (b *browser) waitFor(expr string) {
	b.t.Helper()
	got := ""
	for range 100 {
		if got = b.eval(expr); got == "true" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s is still %s; the page shows:\n%s", expr, got, b.eval(`document.body ? document.body.innerText : ""`))
}

// sendUntil calls send until expr is true, at most 100 times a tenth of a second apart.
func (b *browser) sendUntil(send func(), expr string) {
	b.t.Helper()
	for range 100 {
		send()
		if b.eval(expr) == "true" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s is still false; the page shows:\n%s", expr, b.eval(`document.body.innerText`))
}

func (b *browser) requested() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}
