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

// dockerHub receives Docker Hub repository webhooks. Docker Hub signs nothing and sends no
// identifying header, so the only credential is the secret in the URL's query. Its
// callback_url is retired and is never called.
type dockerHub struct{ secrets Secrets }

func (dockerHub) name() string { return "dockerhub" }

func (h dockerHub) enabled() error {
	if len(h.secrets) == 0 {
		return disabled("Docker Hub", "SECRET")
	}
	return nil
}

func (h dockerHub) authenticate(r *http.Request, _ []byte, _ time.Time) error {
	if !h.secrets.Equal(r.URL.Query().Get("secret")) {
		return errUnauthorized
	}
	return nil
}

type dockerHubPayload struct {
	PushData *struct {
		Tag      string `json:"tag"`
		Pusher   string `json:"pusher"`
		PushedAt int64  `json:"pushed_at"`
	} `json:"push_data"`
	Repository *struct {
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		RepoName  string `json:"repo_name"`
	} `json:"repository"`
}

func (dockerHub) parse(_ *http.Request, body []byte) (delivery, error) {
	var p dockerHubPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not a Docker Hub webhook: %v", err)
	}
	var missing []string
	if p.Repository == nil || p.Repository.RepoName == "" && (p.Repository.Namespace == "" || p.Repository.Name == "") {
		missing = append(missing, "repository.repo_name")
	}
	if p.PushData == nil || p.PushData.Tag == "" {
		missing = append(missing, "push_data.tag")
	}
	if len(missing) > 0 {
		return delivery{}, badRequest("Docker Hub payload lacks %s", strings.Join(missing, " and "))
	}
	repo := p.Repository.RepoName
	if repo == "" {
		repo = p.Repository.Namespace + "/" + p.Repository.Name
	}
	// The namespace is the part of repo_name before '/'; an official image has none.
	ns, _, ok := strings.Cut(repo, "/")
	if !ok {
		ns = "library"
	}
	if p.Repository.Namespace != "" && p.Repository.Namespace != ns {
		return delivery{}, badRequest("Docker Hub payload is inconsistent: repository.namespace %q but repo_name %q", p.Repository.Namespace, repo)
	}
	req := deployer.Request{Source: "dockerhub", Repository: repo, Tag: p.PushData.Tag, Pusher: p.PushData.Pusher}
	if p.PushData.PushedAt > 0 {
		req.PushedAt = time.Unix(p.PushData.PushedAt, 0).UTC()
	}
	// Docker Hub gives no delivery id, but a multi-arch push can arrive as several
	// byte-identical deliveries (same pushed_at): the body's hash makes them one.
	sum := sha256.Sum256(body)
	return delivery{pushes: []push{{id: hex.EncodeToString(sum[:]), bodyID: true, req: req}}}, nil
}
