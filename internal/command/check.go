package command

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
)

// Check is `berth check`: it validates what berth serve would run with, and changes nothing.
func Check(ctx context.Context, args []string, env Env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	push := fs.String("push", "", "also print which services a push of this image (repository:tag) would redeploy")
	if err := parseFlags(fs, args, stdout, "check [--push REF]",
		"Validate the environment, the compose project(s), the engine, registry logins, start-first and the hash rule,\n"+
			"and say which services a push would redeploy. Nothing is pulled, created or changed."); err != nil {
		return noHelp(err)
	}
	w, err := wire(ctx, ctx, env, stderr, nil)
	if err != nil {
		return err
	}
	defer w.close(ctx)
	problems := 0
	report := func(ok bool, format string, a ...any) {
		mark := "ok  "
		if !ok {
			mark = "FAIL"
			problems++
		}
		fmt.Fprintf(stdout, "%s %s\n", mark, fmt.Sprintf(format, a...))
	}
	report(true, "configuration: OWNER=%s, senders %s, status API %v, %d notification URL(s), dry run %v, opt-in %v",
		strings.Join(w.cfg.Owner, ","), strings.Join(w.cfg.EnabledCredentials(), ","), w.cfg.APIToken != "", len(w.cfg.Notify), w.cfg.DryRun, w.cfg.OptIn)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ping, err := w.docker.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		report(false, "engine at %s does not answer: %v", w.docker.DaemonHost(), err)
		return fmt.Errorf("check found %d problem(s)", problems)
	} else {
		report(true, "engine at %s answers (API %s)", w.docker.DaemonHost(), ping.APIVersion)
	}
	projects, err := w.deployer.Projects(ctx)
	if err != nil {
		return err
	}
	for _, p := range projects {
		switch {
		case !p.Allowed:
			fmt.Fprintf(stdout, "skip project %s: not allowed by PROJECTS/SKIP_PROJECTS\n", p.Name)
		case p.Problem != "":
			report(false, "project %s: %s", cmp.Or(p.Name, p.Spec.Dir), p.Problem)
		default:
			report(true, "project %s loads (%s)", p.Name, strings.Join(p.ConfigFiles, ", "))
		}
	}
	services, err := w.deployer.CheckServices(ctx)
	if err != nil {
		return err
	}
	for _, s := range services {
		name := s.Project + "/" + s.Service
		if s.Skipped != "" {
			fmt.Fprintf(stdout, "skip %s: %s\n", name, s.Skipped)
			continue
		}
		if s.Registry != nil {
			report(false, "%s: %v", name, s.Registry)
		} else {
			report(true, "%s: %s resolves in its registry; tag policy %s; config hash rule %s", name, s.Image, s.TagPolicy, s.HashRule)
		}
		if s.StartFirst != "" {
			fmt.Fprintf(stdout, "note %s: %s\n", name, s.StartFirst)
		}
	}
	policies, err := w.deployer.Policies(ctx)
	if err != nil {
		return err
	}
	for _, p := range policies {
		name := p.Project + "/" + p.Service
		if p.Problem != "" {
			report(false, "%s: %s", name, p.Problem)
		}
		if p.Gate != (deployer.GateConfig{}) {
			fmt.Fprintf(stdout, "gate %s: image=%q command=%q url=%q timeout=%s (from %s)\n", name, p.Gate.Image, p.Gate.Command, p.Gate.URL, p.Gate.Timeout, p.Gate.Source)
		}
		if p.Hooks.PreStop != "" || p.Hooks.PostStart != "" {
			fmt.Fprintf(stdout, "hooks %s: pre-stop=%q post-start=%q\n", name, p.Hooks.PreStop, p.Hooks.PostStart)
		}
	}
	if *push != "" {
		req, err := deployer.RequestFor(*push)
		if err != nil {
			return err
		}
		t, err := w.deployer.Plan(ctx, req)
		if err != nil {
			report(false, "a push of %s: %v", *push, err)
		} else if len(t.Services) == 0 {
			fmt.Fprintf(stdout, "a push of %s would redeploy nothing\n", t.Image)
		} else {
			fmt.Fprintf(stdout, "a push of %s would redeploy: %s\n", t.Image, strings.Join(t.Services, ", "))
		}
	}
	if problems > 0 {
		return fmt.Errorf("check found %d problem(s)", problems)
	}
	return nil
}
