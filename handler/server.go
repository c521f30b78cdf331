// Package handler is berth's HTTP surface: it authenticates webhook calls, turns each sender's
// payload into deployer requests and reports the outcome. It knows nothing of Docker.
package handler

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
)

// maxBody bounds a webhook body; real payloads are a few KiB.
const maxBody = 1 << 20

// maxPushes bounds the deploy requests one delivery may carry: each costs a compose project
// load, and real deliveries carry a handful.
const maxPushes = 64

// Deployer is what the handler needs from the deployer.
type Deployer interface {
	Deploy(ctx context.Context, req deployer.Request) (deployer.Ticket, error)
}

// Config holds the credentials of the webhook senders, one list per source kind (several
// values while one is rotated out). A kind with no credential is disabled.
type Config struct {
	DockerHub    Secrets // the secret Docker Hub presents in the URL's query (?secret=)
	Quay         Secrets // the secret Quay presents in the URL's query (?secret=)
	Distribution Secrets // bearer tokens a distribution registry sends as Authorization
	// DistributionHost is the registry host compose files name a distribution registry's
	// images with; "" takes each event's request.host (the host the pusher addressed).
	DistributionHost string
	GHCR             Secrets // GitHub webhook secrets (HMAC-SHA256 in X-Hub-Signature-256)
	// GHCRHost is the one registry host GitHub deliveries may deploy images from; ghcr.io when "".
	GHCRHost         string
	Harbor           Secrets // Harbor's "Auth Header" values, sent verbatim as Authorization
	Gitea            Secrets // Gitea/Forgejo webhook secrets (bare hex HMAC-SHA256)
	StandardWebhooks Secrets // Standard Webhooks keys, whsec_<base64>
	// APIToken is the read API's bearer token (image inspection); the read API is off without one.
	APIToken Secrets
	// Now is the clock timestamps are checked against; time.Now when nil.
	Now func() time.Time
	// RecentDeliveries is how many delivery ids are remembered to spot repeats; 4096 when 0.
	RecentDeliveries int
	// Limits are the abuse limits and the trusted proxies (limit.go).
	Limits Limits
	// Ops are the status API and metrics.
	Ops Ops
}

// source is one kind of webhook sender: how it proves who it is and what its payload means.
type source interface {
	name() string
	// enabled is nil when the kind has a credential, else a bad request saying how to enable it.
	enabled() error
	// authenticate checks the request with this kind's own credential; now is berth's clock.
	authenticate(r *http.Request, body []byte, now time.Time) error
	// parse turns an authenticated body into the pushes it reports.
	parse(r *http.Request, body []byte) (delivery, error)
}

// delivery is what one webhook call reports.
type delivery struct {
	pushes  []push
	ignored string // why nothing is deployed, when pushes is empty
	// ackRefusals is set for senders that retry forever on any non-2xx answer and block their
	// queue meanwhile (distribution): a push berth refuses (foreign namespace, bad reference)
	// is then acknowledged with 200 and reported in the body instead of failing the call.
	ackRefusals bool
}

// push is one pushed tag, with the sender's id for it (empty when the sender gives none).
// bodyID marks an id berth made from the body's hash, for senders that give none: the same
// body re-sent later is a new deploy check, so such ids are remembered for bodyIDWindow only.
type push struct {
	id     string
	bodyID bool
	req    deployer.Request
}

// bodyIDWindow is how long a body-hash id counts as a duplicate: long enough to fold the
// identical deliveries of one multi-arch push, short enough that a body re-sent by hand deploys.
const bodyIDWindow = 2 * time.Minute

// NewServer returns berth's HTTP handler with every route.
func NewServer(cfg Config, d Deployer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, cfg, d, log)
	srcs := newSources(cfg)
	// A webhook no sender's check could admit, whatever its body: protect refuses it unread
	// from an address that is rate-limited.
	hopeless := func(r *http.Request) bool {
		return r.Method == http.MethodPost && r.URL.Path == "/webhook" && !srcs.mayAdmit(r)
	}
	return protect(mux, cfg.Limits, hopeless, log)
}

// webhookResult is the JSON answer to a webhook that passed authentication.
type webhookResult struct {
	Status   string   `json:"status"` // "queued", "ignored" or "duplicate"
	Source   string   `json:"source"`
	Deploy   string   `json:"deploy,omitempty"`
	Image    string   `json:"image,omitempty"`
	Services []string `json:"services"`
	Reason   string   `json:"reason,omitempty"`
	Refused  []string `json:"refused,omitempty"` // pushes refused but acknowledged, with why
}

func handleWebhook(cfg Config, d Deployer, log *slog.Logger) http.Handler {
	sources := newSources(cfg)
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	seen := newRecent(cfg.RecentDeliveries)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := []any{"remote", r.RemoteAddr}
		src, dl, err := readDelivery(w, r, sources, now)
		if src != nil {
			attrs = append(attrs, "source", src.name())
		}
		if err != nil {
			writeError(w, log, webhookRefused, err, attrs...)
			return
		}
		res := webhookResult{Status: "ignored", Source: src.name(), Services: []string{}, Reason: dl.ignored}
		duplicates := 0
		for _, p := range dl.pushes {
			attrs := append(attrs, "repository", p.req.Repository, "tag", p.req.Tag, "digest", p.req.Digest)
			key := ""
			if p.id != "" {
				key = src.name() + "\x00" + p.id + "\x00" + p.req.Repository + ":" + p.req.Tag
				ttl := time.Duration(0)
				if p.bodyID {
					ttl = bodyIDWindow
				}
				if !seen.add(key, now(), ttl) {
					duplicates++
					log.Debug("duplicate delivery", attrs...)
					continue
				}
			}
			err := cfg.checkPush(src.name(), p.req)
			var t deployer.Ticket
			if err == nil {
				t, err = d.Deploy(r.Context(), p.req)
			}
			if err != nil {
				if key != "" {
					seen.remove(key) // let the sender's retry through
				}
				if dl.ackRefusals && statusFor(err) < 500 {
					log.Warn("push refused, acknowledged so the sender does not retry", append(attrs, "err", err)...)
					res.Refused = append(res.Refused, p.req.Repository+":"+p.req.Tag+": "+err.Error())
					continue
				}
				writeError(w, log, webhookRefused, err, attrs...)
				return
			}
			log.Debug("push accepted", append(attrs, "deploy", t.ID, "services", strings.Join(t.Services, ","))...)
			res.Image = t.Image
			if len(t.Services) > 0 {
				res.Status, res.Deploy = "queued", t.ID
				res.Services = append(res.Services, t.Services...)
			} else if res.Reason == "" {
				res.Reason = "no service in the compose project runs " + t.Image
			}
		}
		status := http.StatusOK
		switch {
		case res.Status == "queued":
			status, res.Reason = http.StatusAccepted, ""
		case duplicates > 0 && duplicates == len(dl.pushes):
			res.Status, res.Reason = "duplicate", "this delivery was already received"
		case len(res.Refused) > 0 && res.Reason == "":
			res.Reason = "every push was refused"
		}
		// One INFO line per push; events that report none (blob uploads, pulls) and repeats are DEBUG.
		level := slog.LevelInfo
		if len(dl.pushes) == 0 || res.Status == "duplicate" {
			level = slog.LevelDebug
		}
		log.Log(r.Context(), level, "webhook", append(attrs, "outcome", res.Status, "status", status, "image", res.Image, "deploy", res.Deploy,
			"services", strings.Join(res.Services, ","), "reason", res.Reason)...)
		writeJSON(w, status, res)
	})
}

// readDelivery reads the request's body, finds its sender, checks the sender is enabled and
// the call authentic, and parses the pushes it reports. src is set once the sender is known,
// even when a later check fails, so the refusal can name it.
func readDelivery(w http.ResponseWriter, r *http.Request, sources sources, now func() time.Time) (source, delivery, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		return nil, delivery{}, err
	}
	src, err := sources.detect(r, body)
	if err != nil {
		return nil, delivery{}, err
	}
	noteSource(r, src.name())
	if err := src.enabled(); err != nil {
		return src, delivery{}, err
	}
	if err := admit(r, src.authenticate(r, body, now())); err != nil {
		return src, delivery{}, err
	}
	dl, err := src.parse(r, body)
	if err != nil {
		return src, delivery{}, err
	}
	if len(dl.pushes) > maxPushes {
		return src, delivery{}, badRequest("the delivery reports %d pushes; berth accepts at most %d in one call", len(dl.pushes), maxPushes)
	}
	return src, dl, nil
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// checkDigest accepts an OCI content digest (sha256:<64 hex> or sha512:<128 hex>) or nothing.
func checkDigest(field, d string) error {
	if d == "" {
		return nil
	}
	alg, hexPart, _ := strings.Cut(d, ":")
	want := map[string]int{"sha256": 64, "sha512": 128}[alg]
	if want == 0 || len(hexPart) != want || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return badRequest("%s %q is not a content digest (sha256:<64 lowercase hex>)", field, d)
	}
	return nil
}

// tagPattern is what a tag may be: no digest, no path, at most 128 characters.
var tagPattern = regexp.MustCompile(`^\w[\w.-]{0,127}$`)

// checkPush refuses a push its sender cannot make: a tag that is not a tag (a digest comes
// only from a field that carries one), or an image on a registry the sender does not speak
// for — Docker Hub for Docker Hub images only, GitHub for GHCRHost's only, a self-hosted
// registry for its own host only. berth's generic Standard Webhooks sender names any.
func (c Config) checkPush(source string, req deployer.Request) error {
	if !tagPattern.MatchString(req.Tag) {
		return badRequest("tag %s is not a tag (letters, digits, '_', '.', '-'; at most 128; no digest)", quote(req.Tag))
	}
	host := registryHost(req.Repository)
	refuse := func(may string) error {
		if _, err := registry.ParseRef(req.Repository); err != nil {
			// Not a repository at all: say that, not which host it is not on.
			return badRequest("repository %s is not an image repository: %v", quote(req.Repository), err)
		}
		shown := host
		if shown == "" {
			shown = "Docker Hub"
		}
		return &fault.Error{Kind: fault.Forbidden, Msg: fmt.Sprintf("a %s delivery may deploy %s only; %s is on %s", source, may, req.Repository, shown)}
	}
	switch source {
	case "standardwebhooks":
		return nil
	case "dockerhub":
		if !onDockerHub(host) {
			return refuse("Docker Hub images")
		}
	case "ghcr":
		if want := cmp.Or(c.GHCRHost, "ghcr.io"); host != want {
			return refuse("images on " + want + " (GHCR_HOST)")
		}
	default:
		if onDockerHub(host) {
			return refuse("images on the registry host its payload names")
		}
	}
	return nil
}

// registryHost is the registry host a repository names, lower-cased; "" for Docker Hub's
// short names (acme/web). As in image references, only a first part with a dot, a colon or
// "localhost" is a host.
func registryHost(repo string) string {
	first, _, ok := strings.Cut(repo, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return strings.ToLower(first)
	}
	return ""
}

// onDockerHub says whether host is Docker Hub's, by any of its names.
func onDockerHub(host string) bool {
	switch host {
	case "", "docker.io", "index.docker.io", "registry-1.docker.io":
		return true
	}
	return false
}

// repositoryOf strips a tag or digest from a reference such as harbor.acme.example/acme/web:1.4.2,
// leaving the repository.
func repositoryOf(ref string) string {
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		ref = ref[:i]
	}
	if i := strings.LastIndexByte(ref, ':'); i > strings.LastIndexByte(ref, '/') {
		ref = ref[:i]
	}
	return ref
}
