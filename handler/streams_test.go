package handler

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/handler/web"
)

// TestOpenPagesNeverHoldUpWebhooks: with every request slot's worth of status pages open (and
// more), webhooks are still answered 202 at once; the streams past the stream places are told
// to come back later instead of taking a slot.
func TestOpenPagesNeverHoldUpWebhooks(t *testing.T) {
	ops := &fakeOps{}
	cfg := Config{DockerHub: Secrets{dockerHubURL}, Limits: Limits{MaxConcurrent: 2, QueueWait: 100 * time.Millisecond},
		Ops: Ops{APIToken: pageToken, History: ops, Events: web.NewHub()}}
	srv := httptest.NewServer(NewServer(cfg, &recordingDeployer{}, slog.New(slog.DiscardHandler)))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	open := func() string { // the stream's first lines
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/ui/events", nil)
		req.Header.Set("Authorization", "Bearer "+pageToken)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		line, _ := bufio.NewReader(res.Body).ReadString('\n')
		return strconv.Itoa(res.StatusCode) + " " + line
	}
	places := maxStreams(2)
	for i := range places {
		if got := open(); got != "200 retry: 2000\n" {
			t.Fatalf("stream %d: %q, want a live stream", i+1, got)
		}
	}
	if got := open(); got != "200 retry: 15000\n" {
		t.Errorf("stream past the %d places: %q, want to be told to retry later", places, got)
	}
	body := string(fixture(t, "dockerhub-push.json"))
	for i := range 3 {
		b := strings.Replace(body, `"pushed_at": 1795183407`, `"pushed_at": `+strconv.Itoa(1795183407+i), 1)
		res, err := http.Post(srv.URL+"/webhook?secret="+dockerHubURL, "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusAccepted {
			t.Errorf("webhook %d while %d pages are open: %d, want 202", i+1, places+1, res.StatusCode)
		}
	}
}
