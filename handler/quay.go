package handler

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// quay receives Quay "Push to Repository" notifications sent by the Webhook POST method.
// Quay can neither sign nor add a header, so the credential is a secret in the URL's query,
// kept apart from Docker Hub's so that each can be rotated or revoked alone.
type quay struct{ secrets Secrets }

func (quay) name() string { return "quay" }

func (s quay) enabled() error {
	if len(s.secrets) == 0 {
		return disabled("Quay", "QUAY_SECRET")
	}
	return nil
}

func (s quay) authenticate(r *http.Request, _ []byte, _ time.Time) error {
	if !s.secrets.Equal(r.URL.Query().Get("secret")) {
		return errUnauthorized
	}
	return nil
}

type quayPayload struct {
	Repository  string   `json:"repository"`
	DockerURL   string   `json:"docker_url"`
	UpdatedTags []string `json:"updated_tags"`
}

// parse reads a repo_push event. It carries no digest and no delivery id: repeats are left
// to the deploy queue, which coalesces pushes of one service.
func (quay) parse(_ *http.Request, body []byte) (delivery, error) {
	var p quayPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not a Quay repository push: %v", err)
	}
	if p.DockerURL == "" {
		return delivery{}, badRequest("Quay payload lacks docker_url (the pullable repository, e.g. quay.example/acme/web)")
	}
	var dl delivery
	for _, tag := range p.UpdatedTags {
		if tag == "" {
			continue
		}
		dl.pushes = append(dl.pushes, push{req: deployer.Request{Source: "quay", Repository: p.DockerURL, Tag: tag}})
	}
	if len(dl.pushes) == 0 {
		dl.ignored = "Quay push updated no tag"
	}
	return dl, nil
}
