// Package browsertest drives Debian's headless Chromium over the DevTools protocol (a pipe,
// no port), for the status page's tests: in handler against fakes, and end to end against a
// berth on the sandbox engine.
package browsertest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Start starts Chromium with one tab that records the page's requests and its CSP violations
// (CSPViolations), or skips the test when Chromium is not installed (fails it instead when
// BERTH_REQUIRE_BROWSER=1, as CI sets).
func Start(t testing.TB) *Browser {
	t.Helper()
	bin := ""
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	switch {
	case bin == "" && os.Getenv("BERTH_REQUIRE_BROWSER") == "1":
		t.Fatal("chromium is not installed, and BERTH_REQUIRE_BROWSER=1 (CI) says the page tests must run")
	case bin == "":
		t.Skip("chromium is not installed (apt-get install -y chromium); the browser test is skipped")
	}
	b := start(t, bin)
	b.Do("Page.enable", nil)
	b.Do("Network.enable", nil)
	b.Do("Page.addScriptToEvaluateOnNewDocument", map[string]any{"source": `window.__csp = [];
document.addEventListener("securitypolicyviolation", e => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`})
	return b
}

// CSPViolations lists the page's Content-Security-Policy violations as JSON ("[]" for none).
func (b *Browser) CSPViolations() string { return b.Eval(`JSON.stringify(window.__csp)`) }

// Screenshots stores the page in both colour schemes, and on a phone's screen, under
// $BERTH_TEST_ARTIFACTS (a temporary directory when unset), as name-light.png,
// name-dark.png and name-phone.png.
func (b *Browser) Screenshots(name string) {
	b.t.Helper()
	dir := os.Getenv("BERTH_TEST_ARTIFACTS")
	if dir == "" {
		dir = b.t.TempDir()
	}
	for _, theme := range []string{"light", "dark", "phone"} {
		if theme == "phone" {
			b.Do("Emulation.setDeviceMetricsOverride", map[string]any{"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true})
			defer b.Do("Emulation.clearDeviceMetricsOverride", nil)
		} else {
			b.Do("Emulation.setEmulatedMedia", map[string]any{"features": []map[string]string{{"name": "prefers-color-scheme", "value": theme}}})
		}
		var shot struct{ Data string }
		b.Decode(b.Do("Page.captureScreenshot", map[string]any{"format": "png"}), &shot)
		png, _ := base64.StdEncoding.DecodeString(shot.Data)
		path := filepath.Join(dir, name+"-"+theme+".png")
		if err := os.WriteFile(path, png, 0o644); err != nil {
			b.t.Fatal(err)
		}
		b.t.Logf("screenshot %s (%d bytes)", path, len(png))
	}
}

// Browser is one headless Chromium tab spoken to over --remote-debugging-pipe.
type Browser struct {
	t       testing.TB
	in      *os.File // to the browser (its fd 3)
	session string
	mu      sync.Mutex
	next    int
	waiting map[int]chan json.RawMessage
	urls    []string
}

func start(t testing.TB, bin string) *Browser {
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
	b := &Browser{t: t, in: in, waiting: map[int]chan json.RawMessage{}}
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
	b.Decode(b.Do("Target.createTarget", map[string]any{"url": "about:blank"}), &target)
	var attached struct{ SessionID string }
	b.Decode(b.Do("Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}), &attached)
	b.session = attached.SessionID
	return b
}

// read routes the browser's answers to their callers and keeps the URLs the page requested.
func (b *Browser) read(out *os.File) {
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

// Do sends one DevTools command to the tab (or the browser, before attaching) and waits for its answer.
func (b *Browser) Do(method string, params any) json.RawMessage {
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
		if method == "Runtime.evaluate" && bytes.Contains(res, []byte("navigated or closed")) {
			// The page was replaced while the expression ran (a form's redirect): a result
			// like any exception, so that WaitFor asks again on the new page.
			return json.RawMessage(`{"exceptionDetails": {"text": "the page navigated"}}`)
		}
		if bytes.Contains(res, []byte(`"cdpError"`)) {
			b.t.Fatalf("%s: %s", method, res)
		}
		return res
	case <-time.After(30 * time.Second):
		b.t.Fatalf("%s: no answer from chromium", method)
		return nil
	}
}

func (b *Browser) Decode(raw json.RawMessage, v any) {
	b.t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		b.t.Fatalf("decode %s: %v", raw, err)
	}
}

// Eval evaluates expr in the page and returns its value as text.
func (b *Browser) Eval(expr string) string {
	b.t.Helper()
	var res struct {
		Result           struct{ Value any }
		ExceptionDetails *struct{ Text string }
	}
	b.Decode(b.Do("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}), &res)
	if res.ExceptionDetails != nil {
		return "exception: " + res.ExceptionDetails.Text
	}
	return fmt.Sprint(res.Result.Value)
}

// WaitFor polls expr until it is true, at most 300 times a tenth of a second apart (a loaded
// machine runs Chromium slowly).
func (b *Browser) WaitFor(expr string) {
	b.t.Helper()
	got := ""
	for range 300 {
		if got = b.Eval(expr); got == "true" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s is still %s; the page shows:\n%s", expr, got, b.Eval(`document.body ? document.body.innerText : ""`))
}

// SendUntil calls send until expr is true, at most 100 times a tenth of a second apart.
func (b *Browser) SendUntil(send func(), expr string) {
	b.t.Helper()
	for range 100 {
		send()
		if b.Eval(expr) == "true" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.t.Fatalf("%s is still false; the page shows:\n%s", expr, b.Eval(`document.body.innerText`))
}

func (b *Browser) Requested() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.urls...)
}
