package handler

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// standardWebhooks receives calls signed per Standard Webhooks v1, so any CI job can ask berth
// to deploy. The signature covers "<webhook-id>.<webhook-timestamp>.<body>", so both the id
// (for duplicates) and the timestamp (for the ±5 minute window) are authenticated.
//
// The payload berth defines for it (only type and data.repository and data.tag are required):
//
//	{"type": "image.pushed", "timestamp": "2026-11-20T14:03:27Z",
//	 "data": {"registry": "registry.acme.example", "repository": "acme/web",
//	          "tag": "1.4.2", "digest": "sha256:…"}}
//
// An empty registry means Docker Hub; a digest pins the deploy to that manifest.
type standardWebhooks struct{ keys Secrets }

func (standardWebhooks) name() string { return "standardwebhooks" }

func (s standardWebhooks) enabled() error {
	if len(s.keys) == 0 {
		return disabled("Standard Webhooks", "STANDARD_WEBHOOKS_SECRET")
	}
	return nil
}

// maxSignatures bounds the work one request can ask for; producers send one or two.
const maxSignatures = 8

func (s standardWebhooks) authenticate(r *http.Request, body []byte, now time.Time) error {
	id, ts := r.Header.Get("Webhook-Id"), r.Header.Get("Webhook-Timestamp")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if id == "" || err != nil {
		return errUnauthorized
	}
	var sigs [][]byte
	for _, f := range strings.Fields(r.Header.Get("Webhook-Signature")) {
		v, sig, ok := strings.Cut(f, ",")
		if !ok || v != "v1" {
			continue // another scheme, e.g. v1a; not ours to check
		}
		if b, err := base64.StdEncoding.DecodeString(sig); err == nil && len(b) == sha256.Size {
			sigs = append(sigs, b)
		}
		if len(sigs) == maxSignatures {
			break
		}
	}
	ok := false
	for _, k := range s.keys {
		key, err := WebhookKey(k)
		if err != nil {
			continue
		}
		m := hmac.New(sha256.New, key)
		m.Write([]byte(id + "." + ts + "."))
		m.Write(body)
		sum := m.Sum(nil)
		for _, sig := range sigs {
			if hmac.Equal(sum, sig) {
				ok = true
			}
		}
	}
	if !ok {
		return errUnauthorized
	}
	return checkTimestamp(time.Unix(sec, 0), now)
}

// WebhookKey is the HMAC key of a Standard Webhooks secret: the base64 after "whsec_".
func WebhookKey(s Secret) ([]byte, error) {
	b64, _ := strings.CutPrefix(string(s), "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	return key, nil
}

// imagePushed is the generic payload berth defines for Standard Webhooks callers.
type imagePushed struct {
	Type      string `json:"type"`
	Timestamp string `json:"timestamp"`
	Data      *struct {
		Registry   string `json:"registry"`
		Repository string `json:"repository"`
		Tag        string `json:"tag"`
		Digest     string `json:"digest"`
		Pusher     string `json:"pusher"`
	} `json:"data"`
}

func (standardWebhooks) parse(r *http.Request, body []byte) (delivery, error) {
	var p imagePushed
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not berth's image.pushed payload: %v", err)
	}
	if p.Type != "image.pushed" {
		return delivery{}, badRequest("type %s is not handled; berth expects {\"type\":\"image.pushed\",\"data\":{\"repository\":…,\"tag\":…}}", quote(p.Type))
	}
	if p.Data == nil || p.Data.Repository == "" || p.Data.Tag == "" {
		return delivery{}, badRequest("image.pushed payload lacks data.repository or data.tag")
	}
	if err := checkDigest("data.digest", p.Data.Digest); err != nil {
		return delivery{}, err
	}
	repo := p.Data.Repository
	if p.Data.Registry != "" {
		repo = strings.TrimSuffix(p.Data.Registry, "/") + "/" + repo
	}
	req := deployer.Request{Source: "standardwebhooks", Repository: repo, Tag: p.Data.Tag, Digest: p.Data.Digest, Pusher: p.Data.Pusher}
	if at, err := time.Parse(time.RFC3339Nano, p.Timestamp); err == nil {
		req.PushedAt = at.UTC()
	}
	return delivery{pushes: []push{{id: r.Header.Get("Webhook-Id"), req: req}}}, nil
}
