// Package notify posts a message for every finished deploy to chat and JSON webhooks; it
// consumes deploy records and is no part of the deploy.
package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/distribution/reference"

	"github.com/berth-dev/berth/deployer"
)

// Notification formats, chosen per URL by a prefix: slack+https://…, discord+https://….
const (
	FormatJSON    = "json"    // the Event itself
	FormatSlack   = "slack"   // {"text": …}, for Slack incoming webhooks and compatibles (Mattermost, Rocket.Chat)
	FormatDiscord = "discord" // {"content": …}, for Discord webhooks
)

// Event is the normalized JSON a notification carries: one finished service deploy.
type Event struct {
	Deploy     string    `json:"deploy"` // the deploy id the webhook answer named
	Source     string    `json:"source"` // the webhook sender kind, or "cli"
	Namespace  string    `json:"namespace"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest,omitempty"`
	Pusher     string    `json:"pusher,omitempty"`
	PushedAt   time.Time `json:"pushed_at,omitzero"`
	Project    string    `json:"project"`
	Service    string    `json:"service"`
	Outcome    string    `json:"outcome"`  // deployed, failed, rolled-back or would-deploy
	Duration   float64   `json:"duration"` // seconds
	Error      string    `json:"error,omitempty"`
}

// Target is one URL notifications go to, and the format it wants.
type Target struct {
	URL    string
	Format string
}

// String hides the URL's path and query: chat webhook URLs carry their secret there.
func (t Target) String() string {
	u, err := url.Parse(t.URL)
	if err != nil {
		return t.Format + "+[invalid url]"
	}
	return t.Format + "+" + u.Scheme + "://" + u.Host + "/…"
}

// LogValue is String, for slog.
func (t Target) LogValue() slog.Value { return slog.StringValue(t.String()) }

// ParseTargets reads NOTIFY_URLS: a comma-separated list of http(s) URLs, each optionally
// prefixed with its format (slack+, discord+, json+; json when none).
func ParseTargets(list string) ([]Target, error) {
	var out []Target
	for i, raw := range strings.Split(list, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		t := Target{URL: raw, Format: FormatJSON}
		if f, rest, ok := strings.Cut(raw, "+"); ok && !strings.Contains(f, "/") {
			switch f {
			case FormatJSON, FormatSlack, FormatDiscord:
				t = Target{URL: rest, Format: f}
			default:
				return nil, fmt.Errorf("NOTIFY_URLS entry %d: format %q is not json, slack or discord", i+1, f)
			}
		}
		u, err := url.Parse(t.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("NOTIFY_URLS entry %d is not an http(s) URL (optionally prefixed slack+ or discord+)", i+1)
		}
		out = append(out, t)
	}
	return out, nil
}

// Options tune delivery; zero values take the defaults.
type Options struct {
	Timeout  time.Duration // per attempt; default 10s
	Attempts int           // default 3
	Backoff  time.Duration // before the second attempt, doubling; default 1s
	Logger   *slog.Logger
}

// Notifier posts an Event for every deploy that deployed, failed, rolled back or would have
// deployed, to every target, in the background: each target has its own queue and goroutine,
// so a slow or dead one neither delays a deploy nor the other targets.
type Notifier struct {
	opts    Options
	client  *http.Client
	queues  []chan Event
	targets []Target
	wg      sync.WaitGroup
	mu      sync.Mutex
	closed  bool
	ctx     context.Context // ends sends in flight when Close gives up
	cancel  context.CancelFunc
}

// queueSize bounds the events waiting per target; past it, new ones are dropped and logged.
const queueSize = 256

// New starts a sender per target.
func New(targets []Target, o Options) *Notifier {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	n := &Notifier{opts: o, client: &http.Client{Timeout: o.Timeout}, targets: targets}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	for _, t := range targets {
		q := make(chan Event, queueSize)
		n.queues = append(n.queues, q)
		n.wg.Add(1)
		go n.send(t, q)
	}
	return n
}

// Notify queues r's event for every target and returns at once.
func (n *Notifier) Notify(r deployer.Record) {
	switch r.Outcome {
	case deployer.OutcomeDeployed, deployer.OutcomeFailed, deployer.OutcomeRolledBack, deployer.OutcomeWouldDeploy,
		deployer.OutcomeAvailable, deployer.OutcomeHeld, deployer.OutcomeDeclined, deployer.OutcomeExpired:
	default:
		return
	}
	ev := EventOf(r)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	for i, q := range n.queues {
		select {
		case q <- ev:
		default:
			n.opts.Logger.Warn("notification dropped: too many waiting", "target", n.targets[i], "deploy", r.ID)
		}
	}
}

// Close stops taking events and waits until the queued ones are sent or ctx ends, when it
// abandons the rest.
func (n *Notifier) Close(ctx context.Context) error {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		for _, q := range n.queues {
			close(q)
		}
	}
	n.mu.Unlock()
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		n.cancel()
		<-done
		return fmt.Errorf("notifications still queued: %w", ctx.Err())
	}
}

// EventOf is the notification event of a deploy record.
func EventOf(r deployer.Record) Event {
	ns := ""
	if named, err := reference.ParseNormalizedNamed(r.Repository); err == nil {
		// The path before the repository's last element, without the registry host.
		if path := reference.Path(named); strings.Contains(path, "/") {
			ns = path[:strings.LastIndex(path, "/")]
		}
	}
	return Event{Deploy: r.ID, Source: r.Source, Namespace: ns, Repository: r.Repository, Tag: r.Tag, Digest: r.Digest, Pusher: r.Pusher,
		PushedAt: r.PushedAt, Project: r.Project, Service: r.Service, Outcome: r.Outcome, Duration: r.Duration.Seconds(), Error: r.Error}
}

func (n *Notifier) send(t Target, q <-chan Event) {
	defer n.wg.Done()
	for ev := range q {
		body, err := payload(t.Format, ev)
		if err != nil {
			n.opts.Logger.Error("encode notification", "err", err)
			continue
		}
		backoff := n.opts.Backoff
		for attempt := 1; ; attempt++ {
			retry, err := n.post(t.URL, body)
			if err == nil {
				n.opts.Logger.Debug("notification sent", "target", t, "deploy", ev.Deploy, "service", ev.Service)
				break
			}
			if !retry || attempt == n.opts.Attempts {
				n.opts.Logger.Warn("notification failed", "target", t, "deploy", ev.Deploy, "attempts", attempt, "err", err)
				break
			}
			select {
			case <-time.After(backoff):
			case <-n.ctx.Done():
			}
			backoff *= 2
		}
	}
}

// post sends one attempt; retry says whether another attempt may succeed.
func (n *Notifier) post(u string, body []byte) (retry bool, err error) {
	if n.ctx.Err() != nil {
		return false, n.ctx.Err()
	}
	req, err := http.NewRequestWithContext(n.ctx, http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return false, errors.New("bad URL")
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := n.client.Do(req)
	if err != nil {
		// The URL may hold a secret and the client's error repeats it: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return true, fmt.Errorf("post: %w", err)
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return true, fmt.Errorf("answered %s", resp.Status)
	}
	return false, fmt.Errorf("answered %s", resp.Status)
}

// payload renders ev in a target's format.
func payload(format string, ev Event) ([]byte, error) {
	switch format {
	case FormatSlack:
		return json.Marshal(map[string]string{"text": summary(ev)})
	case FormatDiscord:
		return json.Marshal(map[string]string{"content": summary(ev)})
	}
	return json.Marshal(ev)
}

// summary is the one-line message chat formats show.
func summary(ev Event) string {
	verb := map[string]string{deployer.OutcomeDeployed: "deployed", deployer.OutcomeFailed: "FAILED to deploy", deployer.OutcomeRolledBack: "ROLLED BACK",
		deployer.OutcomeWouldDeploy: "would deploy (dry run)", deployer.OutcomeAvailable: "has a new digest (watch, not deployed) of",
		deployer.OutcomeHeld: "holds for approval a new digest of", deployer.OutcomeDeclined: "declined a new digest of",
		deployer.OutcomeExpired: "dropped an unapproved, superseded digest of"}[ev.Outcome]
	if ev.Outcome == deployer.OutcomeAvailable && ev.Digest == "" {
		verb = "has a newer tag (watch, not deployed) than" // the semver tag policy's report; its message names the tag
	}
	s := fmt.Sprintf("berth: %s/%s %s %s:%s", ev.Project, ev.Service, verb, ev.Repository, ev.Tag)
	if ev.Pusher != "" {
		s += " pushed by " + ev.Pusher
	}
	s += fmt.Sprintf(" (%.1fs)", ev.Duration)
	if ev.Error != "" {
		s += ": " + ev.Error
	}
	return s
}
