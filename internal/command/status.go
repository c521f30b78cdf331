package command

import (
	"cmp"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/watch"
)

// Status is `berth status`: it asks a running berth's status API (so it shows what that
// berth sees, through its mounts and socket) and prints a table.
func Status(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	base := fs.String("url", defaultAPIURL(getenv), "base URL of the running berth (env BERTH_URL)")
	asJSON := fs.Bool("json", false, "print the status API's JSON instead of a table")
	if err := parseFlags(fs, args, stdout, "status [--url URL] [--json]",
		"Show every service berth serves: image, version, digest, containers, state and health.\n"+
			"Reads a running berth's status API with the token in API_TOKEN (or API_TOKEN_FILE)."); err != nil {
		return noHelp(err)
	}
	body, err := callAPI(ctx, getenv, "status", http.MethodGet, *base, "/api/services", nil, 16<<20)
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var ans struct {
		Services []deployer.ServiceStatus `json:"services"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return fmt.Errorf("berth at %s answered no status JSON: %w", *base, err)
	}
	return printStatus(stdout, ans.Services)
}

// printStatus writes the services as a table, then a line per image a service rolled back from.
func printStatus(stdout io.Writer, services []deployer.ServiceStatus) error {
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SERVICE\tIMAGE\tVERSION\tDIGEST\tCREATED\tDEPLOYS\tCONTAINERS")
	for _, s := range services {
		var cs []string
		for _, c := range s.Containers {
			cs = append(cs, c.Name+" "+c.State+strings.TrimSuffix(" "+c.Health, " "))
		}
		digest := s.RepoDigest
		if _, d, ok := strings.Cut(digest, "@sha256:"); ok && len(d) > 12 {
			digest = d[:12]
		}
		created := ""
		if !s.ImageCreated.IsZero() {
			created = s.ImageCreated.UTC().Format(time.DateTime)
		}
		deploys := "yes"
		if !s.Deploys {
			deploys = "no"
		}
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Project, s.Service, s.Image, cmp.Or(s.ImageLabels["org.opencontainers.image.version"], "-"),
			cmp.Or(digest, "-"), cmp.Or(created, "-"), deploys+" ("+s.TagPolicy+")", cmp.Or(strings.Join(cs, ", "), "none"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	printWatch(stdout, services)
	for _, s := range services {
		for _, f := range s.FailedImages {
			fmt.Fprintf(stdout, "%s/%s rolled back from %s at %s (%s); a push of it is skipped, `berth deploy %s/%s` tries it\n",
				s.Project, s.Service, f.ID, f.At.UTC().Format(time.DateTime), f.Reason, s.Project, s.Service)
		}
	}
	return nil
}

// printWatch writes a line per watched service: its last check and why a new digest waits.
func printWatch(stdout io.Writer, services []deployer.ServiceStatus) {
	short := func(d string) string {
		d = strings.TrimPrefix(d, "sha256:")
		return cmp.Or(d[:min(12, len(d))], "-")
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
