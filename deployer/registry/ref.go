// Package registry is berth's knowledge of image references and registries: how a reference
// normalizes, which registry host it names, the registry logins berth holds (one parser of a
// docker config.json, with a view for pulls, swarm updates and inspection), and reading an
// image's manifest summary from its registry. It makes no engine calls.
package registry

import (
	"fmt"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/distribution/reference"
)

// Ref is an image reference normalized the way the Docker CLI and Engine do it:
// "acme/web" is "docker.io/acme/web:latest", "busybox" is "docker.io/library/busybox:latest".
type Ref struct {
	Name   string // fully qualified repository, e.g. docker.io/acme/web
	Tag    string // "" only when the reference is pinned by digest alone
	Digest string // sha256:… when the reference pins one
}

// ParseRef normalizes s; a reference with neither tag nor digest gets "latest".
func ParseRef(s string) (Ref, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Ref{}, fmt.Errorf("image reference %q: %w", s, err)
	}
	ref := Ref{Name: named.Name()}
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
func (r Ref) String() string {
	s := r.Name
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// Familiar is the short form people write: acme/web:1, busybox:1. It is worked out from Name's
// parts without parsing again: a push's match asks for it, and a parse is a regexp run.
func (r Ref) Familiar() string {
	host, path := r.split()
	name := r.Name
	if host == defaultHost {
		name = path
		if rest, ok := strings.CutPrefix(path, "library/"); ok && !strings.Contains(rest, "/") {
			name = rest
		}
	}
	return Ref{Name: name, Tag: r.Tag, Digest: r.Digest}.String()
}

// Namespace is the path part before the repository's last element, without the registry host:
// "acme" for docker.io/acme/web, "library" for docker.io/library/busybox.
func (r Ref) Namespace() string {
	_, path := r.split()
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[:i]
	}
	return ""
}

// Host is the registry host of the reference: docker.io for Docker Hub images.
func (r Ref) Host() string {
	host, _ := r.split()
	return host
}

// defaultHost is the host a normalized Docker Hub name carries.
const defaultHost = "docker.io"

// split is Name's registry host and path. A normalized name always has both ("docker.io/
// library/busybox"); a Name that was not made by a parse is parsed here.
func (r Ref) split() (host, path string) {
	if host, path, ok := strings.Cut(r.Name, "/"); ok {
		return host, path
	}
	n := mustNamed(r.Name)
	return reference.Domain(n), reference.Path(n)
}

func mustNamed(name string) reference.Named {
	n, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		// Name always comes from a successful parse; keep the zero-path behaviour safe anyway.
		n, _ = reference.ParseNormalizedNamed("invalid")
	}
	return n
}

// TracksTag reports whether a service whose image is svc follows pushes of pushed: same
// repository and same tag. A service pinned by digest follows nothing.
func TracksTag(svc, pushed Ref) bool {
	return svc.Digest == "" && svc.Name == pushed.Name && svc.Tag == pushed.Tag
}

// Pinned is ref's repository at digest: registry.acme.example/acme/web@sha256:….
func Pinned(ref, digest string) (string, error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "image reference %q: %w", ref, err)
	}
	pinned, err := reference.ParseNormalizedNamed(named.Name() + "@" + digest)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "pushed digest %q is not a valid digest: %w", digest, err)
	}
	return pinned.String(), nil
}

// IsHost says whether host names a registry the way an image reference does
// (registry.example.com, registry.example.com:5000, localhost:5000): no scheme, no path.
func IsHost(host string) bool {
	named, err := reference.ParseNormalizedNamed(host + "/x/y")
	return err == nil && reference.Domain(named) == host && !strings.ContainsAny(host, "/@")
}

// hostOf is the registry host of an image reference; docker.io for Docker Hub images.
func hostOf(ref string) string {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ""
	}
	return reference.Domain(named)
}

// keyHost is the registry host a config.json key names: keys may be URLs, and Docker
// Hub's is its legacy index URL, which reference normalization maps to docker.io as for images.
func keyHost(key string) string {
	h := strings.TrimPrefix(strings.TrimPrefix(key, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	named, err := reference.ParseNormalizedNamed(h + "/x")
	if err != nil {
		return h
	}
	return reference.Domain(named)
}
