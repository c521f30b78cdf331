package handler

import (
	"cmp"
	"encoding/json"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// The envelope media types of registry notifications: v1 from registry 2.x, v2 from registry 3.
const (
	distributionV1 = "application/vnd.docker.distribution.events.v1+json"
	distributionV2 = "application/vnd.docker.distribution.events.v2+json"
)

// distribution receives the notifications of a CNCF distribution registry (notifications.
// endpoints in its config.yml). The registry signs nothing; it sends the static headers it is
// configured with, so the credential is a bearer token in Authorization. It retries any answer
// other than 2xx/3xx forever and holds back later events meanwhile, so everything berth merely
// ignores or refuses is acknowledged with a 2xx.
type distribution struct {
	tokens Secrets
	host   string // DISTRIBUTION_HOST; "" takes each event's request.host
}

func (distribution) name() string { return "distribution" }

func (s distribution) enabled() error {
	if len(s.tokens) == 0 {
		return disabled("Distribution registry", "DISTRIBUTION_TOKEN")
	}
	return nil
}

func (s distribution) authenticate(r *http.Request, _ []byte, _ time.Time) error {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || !s.tokens.Equal(strings.TrimSpace(token)) {
		return errUnauthorized
	}
	return nil
}

type distributionEnvelope struct {
	Events []struct {
		ID        string `json:"id"`
		Timestamp string `json:"timestamp"`
		Action    string `json:"action"`
		Target    struct {
			MediaType  string `json:"mediaType"`
			Digest     string `json:"digest"`
			Repository string `json:"repository"`
			URL        string `json:"url"`
			Tag        string `json:"tag"`
		} `json:"target"`
		Request struct {
			Host string `json:"host"`
		} `json:"request"`
		Actor struct {
			Name string `json:"name"`
		} `json:"actor"`
	} `json:"events"`
}

// isManifest tells manifest (and index) pushes from blob pushes, which carry layer or
// octet-stream media types.
func isManifest(mediaType string) bool {
	return strings.Contains(mediaType, "manifest") || strings.Contains(mediaType, "image.index")
}

func (s distribution) parse(_ *http.Request, body []byte) (delivery, error) {
	var env distributionEnvelope
	if err := json.Unmarshal(body, &env); err != nil {
		return delivery{}, badRequest("body is not a distribution notification envelope: %v", err)
	}
	if env.Events == nil {
		return delivery{}, badRequest("distribution envelope lacks events")
	}
	dl := delivery{ackRefusals: true}
	skipped := map[string]int{}
	for _, e := range env.Events {
		t := e.Target
		switch {
		case e.Action != "push":
			action := e.Action
			if len(action) > 16 {
				action = "other"
			}
			skipped[action+" events"]++
			continue
		case !isManifest(t.MediaType):
			skipped["blob pushes"]++
			continue
		case t.Tag == "":
			skipped["untagged manifests"]++
			continue
		}
		// A malformed event is skipped rather than refused: refusing would make the registry
		// resend the envelope forever.
		// The host the pusher addressed is how compose names this registry's images, unless
		// DISTRIBUTION_HOST says otherwise (pushers that reach it under an inside name).
		host := cmp.Or(s.host, e.Request.Host)
		if t.Repository == "" || host == "" || checkDigest("target.digest", t.Digest) != nil {
			skipped["malformed events (no target.repository, no request.host or a bad target.digest)"]++
			continue
		}
		req := deployer.Request{Source: "distribution", Repository: host + "/" + t.Repository, Tag: t.Tag,
			Digest: t.Digest, Pusher: e.Actor.Name}
		if at, err := time.Parse(time.RFC3339Nano, e.Timestamp); err == nil {
			req.PushedAt = at.UTC()
		}
		dl.pushes = append(dl.pushes, push{id: e.ID, req: req})
	}
	if len(dl.pushes) == 0 {
		dl.ignored = "nothing to deploy: only tagged manifest pushes deploy" + describe(skipped)
	}
	return dl, nil
}

// describe lists what was skipped, e.g. "; skipped 2 blob pushes, 1 untagged manifests".
func describe(skipped map[string]int) string {
	if len(skipped) == 0 {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(skipped)) {
		parts = append(parts, strconv.Itoa(skipped[k])+" "+k)
	}
	return "; skipped " + strings.Join(parts, ", ")
}
