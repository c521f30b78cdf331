package deployer

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
)

// imageRef is an image reference normalized the way the Docker CLI and Engine do it:
// "acme/web" is "docker.io/acme/web:latest", "busybox" is "docker.io/library/busybox:latest".
type imageRef struct {
	Name   string // fully qualified repository, e.g. docker.io/acme/web
	Tag    string // "" only when the reference is pinned by digest alone
	Digest string // sha256:… when the reference pins one
}

// parseImageRef normalizes s; a reference with neither tag nor digest gets "latest".
func parseImageRef(s string) (imageRef, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return imageRef{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	ref := imageRef{Name: named.Name()}
	if t, ok := named.(reference.Tagged); ok {
		ref.Tag = t.Tag()
	}
	if d, ok := named.(reference.Digested); ok {
		ref.Digest = d.Digest().String()
	}
	if ref.Tag == "" && ref.Digest == "" {
		ref.Tag = "latest"
	}
	return ref, nil
}

// String renders the reference in its canonical, fully qualified form.
func (r imageRef) String() string {
	s := r.Name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Familiar is the short form people write: acme/web:1, busybox:1.
func (r imageRef) Familiar() string {
	named, err := reference.ParseNormalizedNamed(r.String())
	if err != nil {
		return r.String()
	}
	return reference.FamiliarString(named)
}

// Namespace is the path part before the repository's last element, without the registry host:
// "acme" for docker.io/acme/web, "library" for docker.io/library/busybox.
func (r imageRef) Namespace() string {
	path := reference.Path(mustNamed(r.Name))
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return ""
}

func mustNamed(name string) reference.Named {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		// Name always comes from a successful parse; keep the zero-path behaviour safe anyway.
		n, _ = reference.ParseNormalizedNamed("invalid")
	}
	return n
}

// tracksTag reports whether a service whose image is svc follows pushes of pushed: same
// repository and same tag. A service pinned by digest follows nothing.
func tracksTag(svc, pushed imageRef) bool {
	return svc.Digest == "" && svc.Name == pushed.Name && svc.Tag == pushed.Tag
}

// IsRegistryHost says whether host names a registry the way an image reference does
// (registry.example.com, registry.example.com:5000, localhost:5000): no scheme, no path.
func IsRegistryHost(host string) bool {
	named, err := reference.ParseNormalizedNamed(host + "/x/y")
	return err == nil && reference.Domain(named) == host && !strings.ContainsAny(host, "/@")
}
