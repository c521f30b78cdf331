package command

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/config"
)

// defaultAPIURL is where the subcommands that talk to a running berth (status, approve) find
// it: BERTH_URL, else loopback on LISTEN_ADDR's port, as inside berth's own container.
func defaultAPIURL(getenv func(string) string) string {
	if u := getenv("BERTH_URL"); u != "" {
		return u
	}
	_, port, _ := net.SplitHostPort(getenv("LISTEN_ADDR"))
	return "http://127.0.0.1:" + cmp.Or(port, "8080")
}

// callAPI sends one request to the running berth at base with API_TOKEN and returns the body
// of a 200 answer (at most limit bytes); any other answer is an error quoting it. what names
// the subcommand in the error for a missing token.
func callAPI(ctx context.Context, getenv func(string) string, what, method, base, path string, body io.Reader, limit int64) ([]byte, error) {
	token, err := config.ReadSecret(getenv, "API_TOKEN")
	if err != nil {
		return nil, err
	}
	if token == "" {
		return nil, fmt.Errorf("API_TOKEN is not set; berth %s calls the API with the token berth serve was given", what)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(base, "/")+path, body)
	if err != nil {
		return nil, fmt.Errorf("--url %s: %w", base, err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("no berth answers at %s: %w", base, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, fmt.Errorf("read the answer of %s: %w", base, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("berth at %s answered %s: %s", base, resp.Status, strings.TrimSpace(string(answer)))
	}
	return answer, nil
}
