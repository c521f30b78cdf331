package command

import (
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/creack/pty"
)

// stepEvents are a deploy's events as the deployer sends them: a pull with progress, a start
// that ends well, a health wait that fails.
func stepEvents() []deployer.StepEvent {
	ev := func(name, ctr string, done bool, took time.Duration, errText string, pull *deployer.PullProgress) deployer.StepEvent {
		return deployer.StepEvent{Deploy: "d1", Project: "shop", Service: "web", Done: done, Pull: pull,
			Step: deployer.Step{Name: name, Container: ctr, Took: took, Error: errText}}
	}
	return []deployer.StepEvent{
		ev("pull", "acme/web:1.5", false, 0, "", nil),
		ev("pull", "acme/web:1.5", false, 0, "", &deployer.PullProgress{Layers: 3, LayersDone: 1, Current: 2e6, Total: 9e6}),
		ev("pull", "acme/web:1.5", false, 0, "", &deployer.PullProgress{Layers: 3, LayersDone: 3, Current: 9e6, Total: 9e6}),
		ev("pull", "acme/web:1.5", true, 1500*time.Millisecond, "", nil),
		ev("start", "shop-web-1", false, 0, "", nil),
		ev("start", "shop-web-1", true, 200*time.Millisecond, "", nil),
		ev("health", "shop-web-1", false, 0, "", nil),
		ev("health", "shop-web-1", true, time.Second, "unhealthy", nil),
	}
}

// TestStepPrinterOnATerminal: under a pseudo-terminal the running step is rewritten in place,
// with the pull's layers and bytes, and each ended step keeps a line.
func TestStepPrinterOnATerminal(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal here: %v", err)
	}
	defer ptmx.Close()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(ptmx); got <- string(b) }()
	p := newStepPrinter(tty)
	if !p.tty {
		t.Fatal("a pseudo-terminal is not taken for a terminal")
	}
	for _, e := range stepEvents() {
		p.step(e)
	}
	p.end()
	tty.Close()
	out := <-got
	for _, want := range []string{
		"shop/web: pull acme/web:1.5 …",
		clearLine + "shop/web: pull acme/web:1.5: 1/3 layers, 2.0 MB of 9.0 MB",
		clearLine + "shop/web: pull acme/web:1.5 done in 1.5s (3/3 layers, 9.0 MB of 9.0 MB)\r\n",
		clearLine + "shop/web: start shop-web-1 done in 200ms\r\n", // the terminal turns \n into \r\n
		"shop/web: health shop-web-1 failed after 1s: unhealthy\r\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the terminal shows %q, lacking %q", out, want)
		}
	}
}

// TestStepPrinterPiped: into a pipe the printer writes one plain line per ended step, with no
// control character but the newline.
func TestStepPrinterPiped(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(r); got <- string(b) }()
	p := newStepPrinter(w)
	for _, e := range stepEvents() {
		p.step(e)
	}
	p.end()
	w.Close()
	out := <-got
	want := "shop/web: pull acme/web:1.5 done in 1.5s (3/3 layers, 9.0 MB of 9.0 MB)\n" +
		"shop/web: start shop-web-1 done in 200ms\n" +
		"shop/web: health shop-web-1 failed after 1s: unhealthy\n"
	if out != want {
		t.Errorf("piped output %q, want %q", out, want)
	}
	if i := strings.IndexFunc(out, func(r rune) bool { return r < ' ' && r != '\n' }); i >= 0 {
		t.Errorf("piped output has control character %q at %d", out[i], i)
	}
}
