package handler

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// gitea receives Gitea and Forgejo package events. Both sign the raw body with the webhook
// secret as bare hex HMAC-SHA256 (X-Gitea-Signature; Forgejo also X-Forgejo-Signature) and
// name each delivery, but send no timestamp. Gitea also sends X-GitHub-Event, which is why
// detection looks at Gitea's and Forgejo's headers before GitHub's.
type gitea struct{ secrets Secrets }

func (gitea) name() string { return "gitea" }

func (s gitea) enabled() error {
	if len(s.secrets) == 0 {
		return disabled("Gitea/Forgejo", "GITEA_SECRET")
	}
	return nil
}

func (s gitea) authenticate(r *http.Request, body []byte, _ time.Time) error {
	sig := r.Header.Get("X-Forgejo-Signature")
	if sig == "" {
		sig = r.Header.Get("X-Gitea-Signature")
	}
	if !s.secrets.validHMAC(body, sig) {
		return errUnauthorized
	}
	return nil
}

type giteaPayload struct {
	Action  string `json:"action"`
	Package *struct {
		Owner struct {
			Login string `json:"login"`
		} `json:"owner"`
		Creator struct {
			Login string `json:"login"`
		} `json:"creator"`
		Type      string `json:"type"`
		Name      string `json:"name"`
		Version   string `json:"version"`
		HTMLURL   string `json:"html_url"`
		CreatedAt string `json:"created_at"`
	} `json:"package"`
}

func (gitea) parse(r *http.Request, body []byte) (delivery, error) {
	event := r.Header.Get("X-Forgejo-Event")
	if event == "" {
		event = r.Header.Get("X-Gitea-Event")
	}
	if event != "package" {
		return delivery{}, badRequest("Gitea/Forgejo event %s is not handled; set the webhook's trigger to Package events only", quote(event))
	}
	var p giteaPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not a Gitea package event: %v", err)
	}
	pkg := p.Package
	if pkg == nil {
		return delivery{}, badRequest("Gitea package event lacks package")
	}
	if p.Action != "created" {
		return delivery{ignored: "package action " + quote(p.Action) + " deploys nothing; only created does"}, nil
	}
	if pkg.Type != "container" {
		return delivery{ignored: "package type " + quote(pkg.Type) + " is not a container image"}, nil
	}
	if pkg.Version == "" || strings.HasPrefix(pkg.Version, "sha256:") {
		return delivery{ignored: "untagged manifest; the tagged push deploys"}, nil
	}
	// Gitea's registry serves owner/name on the instance's own host, which html_url names.
	u, err := url.Parse(pkg.HTMLURL)
	if err != nil || u.Host == "" || pkg.Owner.Login == "" || pkg.Name == "" {
		return delivery{}, badRequest("Gitea package event lacks package.html_url, package.owner.login or package.name")
	}
	repo := strings.ToLower(u.Host + "/" + pkg.Owner.Login + "/" + pkg.Name)
	req := deployer.Request{Source: "gitea", Repository: repo, Tag: pkg.Version, Pusher: pkg.Creator.Login}
	if at, err := time.Parse(time.RFC3339, pkg.CreatedAt); err == nil {
		req.PushedAt = at.UTC()
	}
	id := r.Header.Get("X-Forgejo-Delivery")
	if id == "" {
		id = r.Header.Get("X-Gitea-Delivery")
	}
	return delivery{pushes: []push{{id: id, req: req}}}, nil
}
