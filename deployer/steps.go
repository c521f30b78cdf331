package deployer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/moby/moby/client"
)

// StepEvent is one step of a running deploy, sent to Options.OnStep as it starts (Done
// false), while an image pulls (Pull set), and as it ends (Done, with Took and Error): what
// the status page and `berth deploy` show live. The Record has the same steps once the deploy ends.
type StepEvent struct {
	Deploy  string        `json:"deploy"`
	Project string        `json:"project"`
	Service string        `json:"service"`
	Step    Step          `json:"step"`
	Done    bool          `json:"done"`
	Pull    *PullProgress `json:"pull,omitempty"`
}

// PullProgress is how far an image pull is: layers seen and done, bytes downloaded of the
// layers whose size the engine has reported.
type PullProgress struct {
	Layers     int   `json:"layers"`
	LayersDone int   `json:"layers_done"`
	Current    int64 `json:"bytes"`
	Total      int64 `json:"bytes_total"`
}

// pullReportEvery spaces the pull progress events: the engine reports every few KiB.
const pullReportEvery = 250 * time.Millisecond

// stepReporter passes a deploy's step events to OnStep, naming the deploy.
func (d *Deployer) stepReporter(j job) func(StepEvent) {
	if d.onStep == nil {
		return nil
	}
	return func(e StepEvent) {
		e.Deploy, e.Project, e.Service = j.id, j.projectName, j.service
		d.onStep(e)
	}
}

// pullReportKey carries, in a pull's context, the function its progress goes to.
type pullReportKey struct{}

func withPullReport(ctx context.Context, report func(PullProgress)) context.Context {
	if report == nil {
		return ctx
	}
	return context.WithValue(ctx, pullReportKey{}, report)
}

// followPull reads the pull's messages to its end, reporting progress when ctx asks for it;
// without a reporter it only waits. It fails as Wait does when the engine reports an error.
func followPull(ctx context.Context, resp client.ImagePullResponse) error {
	report, _ := ctx.Value(pullReportKey{}).(func(PullProgress))
	if report == nil {
		return resp.Wait(ctx)
	}
	defer resp.Close()
	type layer struct {
		current, total int64
		done           bool
	}
	layers := map[string]*layer{}
	var order []string
	last := time.Time{}
	sum := func() PullProgress {
		var p PullProgress
		for _, id := range order {
			l := layers[id]
			p.Layers++
			if l.done {
				p.LayersDone++
			}
			p.Current += l.current
			p.Total += l.total
		}
		return p
	}
	for msg, err := range resp.JSONMessages(ctx) {
		if err != nil {
			return err
		}
		if msg.Error != nil {
			return errors.New(msg.Error.Message)
		}
		if !layerID(msg.ID) { // other ids name the tag or the digest
			continue
		}
		l, ok := layers[msg.ID]
		if !ok {
			l = &layer{}
			layers[msg.ID] = l
			order = append(order, msg.ID)
		}
		switch {
		case msg.Status == "Downloading" && msg.Progress != nil:
			l.current, l.total = msg.Progress.Current, max(l.total, msg.Progress.Total)
		case msg.Status == "Pull complete" || msg.Status == "Already exists" || msg.Status == "Download complete":
			l.done = l.done || msg.Status != "Download complete"
			if l.total > 0 {
				l.current = l.total
			}
		}
		if time.Since(last) >= pullReportEvery {
			report(sum())
			last = time.Now()
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pull: %w", err)
	}
	report(sum())
	return nil
}

// layerID says whether id is a layer's short id in the engine's pull messages: 12 hex digits.
func layerID(id string) bool {
	return len(id) == 12 && strings.Trim(id, "0123456789abcdef") == ""
}

// pullReport turns a pull's progress into step events of the running "pull" step.
func (p *progress) pullReport(ref string) func(PullProgress) {
	if p.report == nil {
		return nil
	}
	return func(pp PullProgress) { p.report(StepEvent{Step: Step{Name: "pull", Container: ref}, Pull: &pp}) }
}
