package handler

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// ghcr receives GitHub package and registry_package events for GitHub Container Registry
// images. GitHub signs the raw body with the webhook secret (X-Hub-Signature-256) and names
// each delivery (X-GitHub-Delivery, kept on manual redelivery), but sends no timestamp.
type ghcr struct{ secrets Secrets }

func (ghcr) name() string { return "ghcr" }

func (s ghcr) enabled() error {
	if len(s.secrets) == 0 {
		return disabled("GitHub (GHCR)", "GHCR_SECRET")
	}
	return nil
}

func (s ghcr) authenticate(r *http.Request, body []byte, _ time.Time) error {
	sig, ok := strings.CutPrefix(r.Header.Get("X-Hub-Signature-256"), "sha256=")
	if !ok || !s.secrets.validHMAC(body, sig) {
		return errUnauthorized
	}
	return nil
}

// ghcrPackage is the part of package.package or registry_package.registry_package berth reads.
type ghcrPackage struct {
	Name           string `json:"name"`
	Namespace      string `json:"namespace"`
	PackageType    string `json:"package_type"`
	UpdatedAt      string `json:"updated_at"`
	PackageVersion *struct {
		PackageURL        string `json:"package_url"`
		ContainerMetadata *struct {
			Tag struct {
				Name   string `json:"name"`
				Digest string `json:"digest"`
			} `json:"tag"`
			Manifest struct {
				Digest string `json:"digest"`
			} `json:"manifest"`
		} `json:"container_metadata"`
		Author struct {
			Login string `json:"login"`
		} `json:"author"`
	} `json:"package_version"`
}

type ghcrPayload struct {
	Action          string       `json:"action"`
	Package         *ghcrPackage `json:"package"`
	RegistryPackage *ghcrPackage `json:"registry_package"`
}

func (ghcr) parse(r *http.Request, body []byte) (delivery, error) {
	event := r.Header.Get("X-GitHub-Event")
	switch event {
	case "ping":
		return delivery{ignored: "ping received; GitHub webhook is set up"}, nil
	case "package", "registry_package":
	default:
		return delivery{}, badRequest("GitHub event %q is not handled; subscribe the webhook to Packages (package events) only", event)
	}
	var p ghcrPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return delivery{}, badRequest("body is not a GitHub %s event: %v", event, err)
	}
	pkg := p.Package
	if event == "registry_package" {
		pkg = p.RegistryPackage
	}
	if pkg == nil {
		return delivery{}, badRequest("GitHub %s event lacks its %s object", event, event)
	}
	if p.Action != "published" {
		return delivery{ignored: "GitHub " + event + " action " + quote(p.Action) + " deploys nothing; only published does"}, nil
	}
	if !strings.EqualFold(pkg.PackageType, "container") {
		return delivery{ignored: "package type " + quote(pkg.PackageType) + " is not a container image"}, nil
	}
	v := pkg.PackageVersion
	if v == nil || v.ContainerMetadata == nil {
		return delivery{}, badRequest("GitHub %s event lacks package_version.container_metadata", event)
	}
	tag := v.ContainerMetadata.Tag.Name
	if tag == "" {
		// Every manifest of a multi-arch push is published on its own; only the tagged one deploys.
		return delivery{ignored: "untagged manifest (a multi-arch child); the tagged push deploys"}, nil
	}
	// package_url is the pullable reference, e.g. <registry>/acme/web:1.4.2.
	repo := repositoryOf(v.PackageURL)
	if !strings.Contains(repo, "/") {
		return delivery{}, badRequest("GitHub %s event's package_version.package_url %s names no image", event, quote(v.PackageURL))
	}
	digest := v.ContainerMetadata.Tag.Digest
	if digest == "" {
		digest = v.ContainerMetadata.Manifest.Digest
	}
	if err := checkDigest("container_metadata.tag.digest", digest); err != nil {
		return delivery{}, err
	}
	req := deployer.Request{Source: "ghcr", Repository: repo, Tag: tag, Digest: digest, Pusher: v.Author.Login}
	if at, err := time.Parse(time.RFC3339, pkg.UpdatedAt); err == nil {
		req.PushedAt = at.UTC()
	}
	return delivery{pushes: []push{{id: r.Header.Get("X-GitHub-Delivery"), req: req}}}, nil
}

// quote shows a sender-supplied word in a message, shortened so a message stays a line.
func quote(s string) string {
	if len(s) > 40 {
		s = s[:40] + "…"
	}
	return `"` + s + `"`
}
