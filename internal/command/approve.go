package command

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
)

// Approve is `berth approve SERVICE [--reject]`: it approves (or rejects) the update watch
// mode holds for SERVICE (berth.approve=manual), through a running berth's API, like berth status.
func Approve(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("approve", flag.ContinueOnError)
	base := fs.String("url", defaultAPIURL(getenv), "base URL of the running berth (env BERTH_URL)")
	reject := fs.Bool("reject", false, "reject the update instead: it is not deployed, and a later digest waits for its own approval")
	if err := parseFlags(fs, args, stdout, "approve SERVICE [--reject] [--url URL]",
		"Approve the new image watch mode holds for SERVICE (label berth.approve=manual); a check runs at once and deploys it.\n"+
			"Talks to a running berth's API with the token in API_TOKEN (or API_TOKEN_FILE)."); err != nil {
		return noHelp(err)
	}
	if fs.NArg() != 1 {
		return Usagef("approve needs exactly one SERVICE (service or project/service); see berth approve --help")
	}
	body, _ := json.Marshal(map[string]any{"service": fs.Arg(0), "reject": *reject})
	answer, err := callAPI(ctx, getenv, "approve", http.MethodPost, *base, "/api/approve", bytes.NewReader(body), 1<<20)
	if err != nil {
		return err
	}
	var ans struct{ Service, Digest, Decision string }
	if err := json.Unmarshal(answer, &ans); err != nil {
		return fmt.Errorf("berth at %s answered no JSON: %w", *base, err)
	}
	fmt.Fprintf(stdout, "%s: %s %s\n", fs.Arg(0), ans.Decision, ans.Digest)
	return nil
}
