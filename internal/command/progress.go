package command

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer"
	"golang.org/x/term"
)

// stepPrinter shows `berth deploy`'s steps as they happen. On a terminal the running step
// stays on one line, rewritten in place (the pull's layers and bytes as they come), and each
// step leaves one line when it ends. Elsewhere (a pipe, a file, a CI log) it writes only the
// plain ended lines: no carriage returns, no escape sequences.
type stepPrinter struct {
	mu   sync.Mutex
	out  io.Writer
	tty  bool
	open bool // a running step's line is shown, not yet ended
	pull map[string]deployer.PullProgress
}

func newStepPrinter(out io.Writer) *stepPrinter {
	f, ok := out.(*os.File)
	return &stepPrinter{out: out, tty: ok && term.IsTerminal(int(f.Fd())), pull: map[string]deployer.PullProgress{}}
}

// clearLine erases the running step's line on a terminal.
const clearLine = "\r\x1b[K"

// step shows one step event; it is the deployer's OnStep.
func (p *stepPrinter) step(e deployer.StepEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := e.Project + "/" + e.Service
	what := e.Step.Name
	if e.Step.Container != "" {
		what += " " + e.Step.Container
	}
	if e.Pull != nil {
		p.pull[key] = *e.Pull
	}
	switch {
	case e.Done:
		line := fmt.Sprintf("%s: %s done in %s", key, what, e.Step.Took.Round(time.Millisecond))
		if pp, ok := p.pull[key]; ok && e.Step.Name == "pull" {
			line += " (" + pullText(pp) + ")"
			delete(p.pull, key)
		}
		if e.Step.Error != "" {
			line = fmt.Sprintf("%s: %s failed after %s: %s", key, what, e.Step.Took.Round(time.Millisecond), e.Step.Error)
		}
		p.write(line + "\n")
		p.open = false
	case p.tty && e.Pull != nil:
		p.write(fmt.Sprintf("%s: %s: %s", key, what, pullText(*e.Pull)))
		p.open = true
	case p.tty:
		p.write(fmt.Sprintf("%s: %s …", key, what))
		p.open = true
	}
}

// write replaces the running step's line, if one is shown, with s.
func (p *stepPrinter) write(s string) {
	if p.tty && p.open {
		s = clearLine + s
	}
	_, _ = io.WriteString(p.out, s)
}

// end closes a running step's line, so what follows starts on a line of its own.
func (p *stepPrinter) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		p.write("\n")
		p.open = false
	}
}

// pullText says how far a pull is: "2/5 layers, 3.1 MB of 12.0 MB".
func pullText(pp deployer.PullProgress) string {
	s := fmt.Sprintf("%d/%d layers", pp.LayersDone, pp.Layers)
	if pp.Total > 0 {
		s += fmt.Sprintf(", %.1f MB of %.1f MB", float64(pp.Current)/1e6, float64(pp.Total)/1e6)
	}
	return s
}
