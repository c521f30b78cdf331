package command

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// Deploy is `berth deploy SERVICE [--image REF]`: the deploy a push would make, by hand,
// through the same deployer; it shows each step as it happens (stepPrinter), waits for the
// outcome and fails unless the service deployed.
func Deploy(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("deploy", flag.ContinueOnError)
	image := fs.String("image", "", "image to deploy, repository:tag[@digest] (default: the image the compose file names)")
	if err := parseFlags(fs, args, stdout, "deploy SERVICE [--image REF]",
		"Redeploy SERVICE (service or project/service) now, as a push of its image would, with the same checks, and wait for the outcome.\n"+
			"Configuration comes from the same environment as berth serve."); err != nil {
		return noHelp(err)
	}
	if fs.NArg() != 1 {
		return Usagef("deploy needs exactly one SERVICE (service or project/service); see berth deploy --help")
	}
	var mu sync.Mutex
	var records []deployer.Record
	steps := newStepPrinter(stdout)
	w, err := wire(ctx, ctx, env, stderr, false, func(r deployer.Record) { mu.Lock(); records = append(records, r); mu.Unlock() }, steps.step)
	if err != nil {
		return err
	}
	defer func() {
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.NotifyTimeout*3)
		defer cancel()
		w.close(closeCtx)
	}()
	t, err := w.deployer.DeployService(ctx, fs.Arg(0), *image)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deploy %s: %s with %s\n", t.ID, strings.Join(t.Services, ", "), t.Image)
	err = w.deployer.Wait(ctx)
	steps.end()
	if err != nil {
		return fmt.Errorf("interrupted while deploy %s runs: %w", t.ID, err)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range records {
		fmt.Fprintf(stdout, "%s/%s: %s in %s\n", r.Project, r.Service, r.Outcome, r.Duration.Round(time.Millisecond))
		if r.Outcome != deployer.OutcomeDeployed && r.Outcome != deployer.OutcomeWouldDeploy && r.Outcome != deployer.OutcomeUpToDate {
			return fmt.Errorf("%s/%s %s: %s", r.Project, r.Service, r.Outcome, r.Error)
		}
	}
	return nil
}
