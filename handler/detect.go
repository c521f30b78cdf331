package handler

import (
	"encoding/json"
	"mime"
	"net/http"
	"strings"
	"time"
)

// expected is what an unrecognised caller is told berth understands.
const expected = "berth expects one of: a Docker Hub push (body with push_data); " +
	"a distribution registry notification (Content-Type " + distributionV1 + " or " + distributionV2 + "); " +
	"a GitHub package or registry_package event (X-GitHub-Event); a Quay repository push (body with updated_tags); " +
	"a Harbor PUSH_ARTIFACT event (body with event_data, or Content-Type application/cloudevents+json); " +
	"a Gitea/Forgejo package event (X-Gitea-Event or X-Forgejo-Event); " +
	"a Standard Webhooks call (webhook-id, webhook-timestamp and webhook-signature headers)"

// sources holds one parser per sender kind, each with its own credential.
type sources struct {
	dockerHub, quay, distribution, ghcr, harbor, gitea, standard source
}

func newSources(cfg Config) sources {
	return sources{
		dockerHub:    dockerHub{secrets: cfg.DockerHub},
		quay:         quay{secrets: cfg.Quay},
		distribution: distribution{tokens: cfg.Distribution, host: cfg.DistributionHost},
		ghcr:         ghcr{secrets: cfg.GHCR},
		harbor:       harbor{auth: cfg.Harbor},
		gitea:        gitea{secrets: cfg.Gitea},
		standard:     standardWebhooks{keys: cfg.StandardWebhooks},
	}
}

// detect picks the parser for a request from what the sender says it is. It never decides
// whether the request is authentic: the chosen kind's own credential does, so claiming to be
// another kind only swaps which credential must be presented. Headers a sender sets are
// checked first, most specific first (Gitea also sends X-GitHub-Event); the unsigned senders
// that set no header of their own are told apart by the shape of the body.
func (s sources) detect(r *http.Request, body []byte) (source, error) {
	h := r.Header
	if src := s.signer(h); src != nil {
		return src, nil
	}
	ct, _, _ := mime.ParseMediaType(h.Get("Content-Type"))
	switch strings.ToLower(ct) {
	case distributionV1, distributionV2:
		return s.distribution, nil
	case "application/cloudevents+json":
		return s.harbor, nil
	}
	var shape struct {
		Events      json.RawMessage `json:"events"`
		EventData   json.RawMessage `json:"event_data"`
		SpecVersion json.RawMessage `json:"specversion"`
		UpdatedTags json.RawMessage `json:"updated_tags"`
		PushData    json.RawMessage `json:"push_data"`
	}
	if err := json.Unmarshal(body, &shape); err != nil {
		return nil, badRequest("unrecognised webhook: the body is not a JSON object (%v); %s", err, expected)
	}
	switch {
	case present(shape.Events):
		return s.distribution, nil
	case present(shape.EventData), present(shape.SpecVersion):
		return s.harbor, nil
	case present(shape.UpdatedTags):
		return s.quay, nil
	case present(shape.PushData):
		return s.dockerHub, nil
	}
	return nil, badRequest("unrecognised webhook: no sender header and no known body shape; %s", expected)
}

// signer is the sender kind h names by a header of its own (Gitea or Forgejo, GitHub, Standard
// Webhooks), or nil; every such kind signs the body.
func (s sources) signer(h http.Header) source {
	switch {
	case h.Get("X-Gitea-Event") != "" || h.Get("X-Forgejo-Event") != "":
		return s.gitea
	case h.Get("X-GitHub-Event") != "":
		return s.ghcr
	case h.Get("Webhook-Id") != "" || h.Get("Webhook-Signature") != "" || h.Get("Webhook-Timestamp") != "":
		return s.standard
	}
	return nil
}

// mayAdmit reports whether r could pass its sender's credential check, judged before its body
// is read: a kind that signs the body can only be checked against it, so its headers are
// enough; every other kind's credential (URL secret, Authorization) is checked as it will be.
// False means r is certain to fail, whatever its body says.
func (s sources) mayAdmit(r *http.Request) bool {
	if s.signer(r.Header) != nil {
		return true
	}
	for _, src := range []source{s.dockerHub, s.quay, s.distribution, s.harbor} {
		if src.authenticate(r, nil, time.Time{}) == nil {
			return true
		}
	}
	return false
}

func present(raw json.RawMessage) bool { return len(raw) > 0 && string(raw) != "null" }
