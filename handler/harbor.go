package handler

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// harbor receives Harbor webhook policies in both payload formats, Default (type
// PUSH_ARTIFACT) and CloudEvents (type harbor.artifact.pushed). Harbor signs nothing; it sends
// the policy's Auth Header verbatim as Authorization, so that whole value is the credential.
// Harbor gives up after 3 s: parsing is all that happens before the answer.
type harbor struct{ auth Secrets }

func (harbor) name() string { return "harbor" }

func (s harbor) enabled() error {
	if len(s.auth) == 0 {
		return disabled("Harbor", "HARBOR_AUTH_HEADER")
	}
	return nil
}

func (s harbor) authenticate(r *http.Request, _ []byte, _ time.Time) error {
	if !s.auth.Equal(r.Header.Get("Authorization")) {
		return errUnauthorized
	}
	return nil
}

type harborEventData struct {
	Resources []struct {
		Digest      string `json:"digest"`
		Tag         string `json:"tag"`
		ResourceURL string `json:"resource_url"`
	} `json:"resources"`
}

type harborPayload struct {
	// Default format.
	Type      string           `json:"type"`
	OccurAt   int64            `json:"occur_at"`
	Operator  string           `json:"operator"`
	EventData *harborEventData `json:"event_data"`
	// CloudEvents format (type and operator are shared).
	SpecVersion string           `json:"specversion"`
	ID          string           `json:"id"`
	Time        string           `json:"time"`
	Data        *harborEventData `json:"data"`
}

func (harbor) parse(_ *http.Request, body []byte) (delivery, error) {
	var p harborPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not a Harbor webhook: %v", err)
	}
	data, id := p.EventData, ""
	var at time.Time
	if p.SpecVersion != "" {
		if p.Type != "harbor.artifact.pushed" {
			return delivery{ignored: "Harbor event " + quote(p.Type) + " deploys nothing; only harbor.artifact.pushed does"}, nil
		}
		data, id = p.Data, p.ID
		at, _ = time.Parse(time.RFC3339Nano, p.Time)
	} else {
		if p.Type != "PUSH_ARTIFACT" {
			return delivery{ignored: "Harbor event " + quote(p.Type) + " deploys nothing; only PUSH_ARTIFACT does"}, nil
		}
		if p.OccurAt > 0 {
			at = time.Unix(p.OccurAt, 0)
		}
		// The Default format has no event id, but Harbor resends the same bytes on retry.
		sum := sha256.Sum256(body)
		id = hex.EncodeToString(sum[:])
	}
	if data == nil {
		return delivery{}, badRequest("Harbor push event lacks its event data (event_data or data)")
	}
	var dl delivery
	for _, res := range data.Resources {
		if res.Tag == "" {
			continue // an untagged artifact, e.g. a multi-arch child
		}
		repo := repositoryOf(res.ResourceURL)
		if repo == "" || !strings.Contains(repo, "/") {
			return delivery{}, badRequest("Harbor resource_url %q does not name a repository (harbor.example/project/repo:tag)", res.ResourceURL)
		}
		if err := checkDigest("Harbor resources[].digest", res.Digest); err != nil {
			return delivery{}, err
		}
		req := deployer.Request{Source: "harbor", Repository: repo, Tag: res.Tag, Digest: res.Digest, Pusher: p.Operator}
		if !at.IsZero() {
			req.PushedAt = at.UTC()
		}
		dl.pushes = append(dl.pushes, push{id: id, bodyID: p.ID == "", req: req})
	}
	if len(dl.pushes) == 0 {
		dl.ignored = "no tagged artifact in the Harbor push"
	}
	return dl, nil
}
