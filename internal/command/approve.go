package command

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/watch"
	"github.com/berth-dev/berth/internal/config"
)

// Approve is `berth approve SERVICE [--reject]`: it approves (or rejects) the update watch
// mode holds for SERVICE (berth.approve=manual), through a running berth's API, like berth status.
func Approve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("approve", flag.ContinueOnError)
	defaultURL := getenv("BERTH_URL")
	if defaultURL == "" {
		_, port, _ := net.SplitHostPort(getenv("LISTEN_ADDR"))
		defaultURL = "http://127.0.0.1:" + cmp.Or(port, "8080")
	}
	base := fs.String("url", defaultURL, "base URL of the running berth (env BERTH_URL)")
	reject := fs.Bool("reject", false, "reject the update instead: it is not deployed, and a later digest waits for its own approval")
	if err := parseFlags(fs, args, stdout, "approve SERVICE [--reject] [--url URL]",
		"Approve the new image watch mode holds for SERVICE (label berth.approve=manual); the next check deploys it.\n"+
			"Talks to a running berth's API with the token in API_TOKEN (or API_TOKEN_FILE)."); err != nil {
		return noHelp(err)
	}
	if fs.NArg() != 1 {
		return Usagef("approve needs exactly one SERVICE (service or project/service); see berth approve --help")
	}
	token, err := config.ReadSecret(getenv, "API_TOKEN")
	if err != nil {
		return err
	}
	if token == "" {
		return errors.New("API_TOKEN is not set; berth approve calls the API with the token berth serve was given")
	}
	body, _ := json.Marshal(map[string]any{"service": fs.Arg(0), "reject": *reject})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/api/approve", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("--url %s: %w", *base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return fmt.Errorf("no berth answers at %s: %w", *base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("berth at %s answered %s: %s", *base, resp.Status, strings.TrimSpace(string(answer)))
	}
	var ans struct{ Service, Digest, Decision string }
	if err := json.Unmarshal(answer, &ans); err != nil {
		return fmt.Errorf("berth at %s answered no JSON: %w", *base, err)
	}
	fmt.Fprintf(stdout, "%s: %s %s\n", fs.Arg(0), ans.Decision, ans.Digest)
	return nil
}

// printWatch writes a line per watched service: its last check and why a new digest waits.
func printWatch(stdout io.Writer, services []deployer.ServiceStatus) {
	short := func(d string) string {
		return cmp.Or(strings.TrimPrefix(d, "sha256:")[:min(12, len(strings.TrimPrefix(d, "sha256:")))], "-")
	}
	for _, s := range services {
		w, key := s.Watch, s.Project+"/"+s.Service
		if w == nil {
			continue
		}
		last := "not checked yet"
		if !w.LastCheck.IsZero() {
			last = "checked " + w.LastCheck.UTC().Format(time.DateTime) + " (" + w.Result + ")"
		}
		line := fmt.Sprintf("%s watch %s every %s: %s, runs %s, available %s", key, w.Mode, w.Interval, last, short(w.Running), short(w.Available))
		switch w.Waiting {
		case watch.WaitMinAge:
			line += ", pending until " + w.Until.UTC().Format(time.DateTime) + " (minimum age)"
		case watch.WaitWindow:
			line += ", waits for its window, next at " + w.Until.UTC().Format(time.DateTime)
		case watch.WaitApproval:
			line += ", waits for approval: berth approve " + key
		case "rejected":
			line += ", rejected by hand"
		}
		if w.NewerTag != "" {
			line += ", newer tag " + w.NewerTag + " (not deployed: berth does not edit compose files)"
		}
		if w.Error != "" {
			line += ": " + w.Error
		}
		fmt.Fprintln(stdout, line)
	}
}
