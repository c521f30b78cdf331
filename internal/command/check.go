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
	"github.com/berth-dev/berth/deployer/gate"
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
	w, err := wire(ctx, ctx, env, stderr, false, nil, nil)
	if err != nil {
		return err
	}
	defer w.close(ctx)
	c := &checker{w: w, out: stdout}
	c.report(true, "configuration: OWNER=%s, senders %s, status API %v, %d notification URL(s), dry run %v, opt-in %v",
		strings.Join(w.cfg.Owner, ","), strings.Join(w.cfg.EnabledCredentials(), ","), w.cfg.APIToken != "", len(w.cfg.Notify), w.cfg.DryRun, w.cfg.OptIn)
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if ping, err := w.docker.Ping(pingCtx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.report(false, "engine at %s does not answer: %v", w.docker.DaemonHost(), err)
		return fmt.Errorf("check found %d problem(s)", c.problems)
	} else {
		c.report(true, "engine at %s answers (API %s)", w.docker.DaemonHost(), ping.APIVersion)
	}
	for _, step := range []func(context.Context) error{c.projects, c.services, c.policies} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if *push != "" {
		if err := c.push(ctx, *push); err != nil {
			return err
		}
	}
	if c.problems > 0 {
		return fmt.Errorf("check found %d problem(s)", c.problems)
	}
	return nil
}

// checker prints check's lines and counts its problems.
type checker struct {
	w        *wiring
	out      io.Writer
	problems int
}

// report prints one "ok" or "FAIL" line; a FAIL is a problem.
func (c *checker) report(ok bool, format string, a ...any) {
	mark := "ok  "
	if !ok {
		mark = "FAIL"
		c.problems++
	}
	fmt.Fprintf(c.out, "%s %s\n", mark, fmt.Sprintf(format, a...))
}

// projects says which projects load, and which are skipped.
func (c *checker) projects(ctx context.Context) error {
	projects, err := c.w.deployer.Projects(ctx)
	if err != nil {
		return err
	}
	for _, p := range projects {
		switch {
		case !p.Allowed:
			fmt.Fprintf(c.out, "skip project %s: not allowed by PROJECTS/SKIP_PROJECTS\n", p.Name)
		case p.Itself:
			c.report(true, "project %s: berth itself (not redeployed)", p.Name)
		case p.Problem != "":
			c.report(false, "project %s: %s", cmp.Or(p.Name, p.Spec.Dir), p.Problem)
		default:
			c.report(true, "project %s loads (%s)", p.Name, strings.Join(p.ConfigFiles, ", "))
		}
	}
	return nil
}

// services says whether each service's image resolves in its registry, and its rules.
func (c *checker) services(ctx context.Context) error {
	services, err := c.w.deployer.CheckServices(ctx)
	if err != nil {
		return err
	}
	for _, s := range services {
		name := s.Project + "/" + s.Service
		if s.Skipped != "" {
			fmt.Fprintf(c.out, "skip %s: %s\n", name, s.Skipped)
			continue
		}
		if s.Registry != nil {
			c.report(false, "%s: %v", name, s.Registry)
		} else {
			c.report(true, "%s: %s resolves in its registry; tag policy %s; config hash rule %s", name, s.Image, s.TagPolicy, s.HashRule)
		}
		if s.StartFirst != "" {
			fmt.Fprintf(c.out, "note %s: %s\n", name, s.StartFirst)
		}
	}
	return nil
}

// policies prints each service's gate and hooks, and fails on a bad one.
func (c *checker) policies(ctx context.Context) error {
	policies, err := c.w.deployer.Policies(ctx)
	if err != nil {
		return err
	}
	for _, p := range policies {
		name := p.Project + "/" + p.Service
		if p.Problem != "" {
			c.report(false, "%s: %s", name, p.Problem)
		}
		if p.Gate != (gate.Config{}) {
			fmt.Fprintf(c.out, "gate %s: image=%q command=%q url=%q timeout=%s (from %s)\n", name, p.Gate.Image, p.Gate.Command, p.Gate.URL, p.Gate.Timeout, p.Gate.Source)
		}
		if p.Hooks.PreStop != "" || p.Hooks.PostStart != "" {
			fmt.Fprintf(c.out, "hooks %s: pre-stop=%q post-start=%q\n", name, p.Hooks.PreStop, p.Hooks.PostStart)
		}
	}
	return nil
}

// push says which services a push of ref would redeploy.
func (c *checker) push(ctx context.Context, ref string) error {
	req, err := deployer.RequestFor(ref)
	if err != nil {
		return err
	}
	t, err := c.w.deployer.Plan(ctx, req)
	if err != nil {
		c.report(false, "a push of %s: %v", ref, err)
	} else if len(t.Services) == 0 {
		fmt.Fprintf(c.out, "a push of %s would redeploy nothing\n", t.Image)
	} else {
		fmt.Fprintf(c.out, "a push of %s would redeploy: %s\n", t.Image, strings.Join(t.Services, ", "))
	}
	return nil
}
