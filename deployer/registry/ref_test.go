package registry

import (
	"strings"
	"testing"

	"github.com/distribution/reference"
)

func TestParseRef(t *testing.T) {
	tests := []struct {
		in, want, familiar, ns string
	}{
		{"acme/web", "docker.io/acme/web:latest", "acme/web:latest", "acme"},
		{"docker.io/acme/web:latest", "docker.io/acme/web:latest", "acme/web:latest", "acme"},
		{"index.docker.io/acme/web:latest", "docker.io/acme/web:latest", "acme/web:latest", "acme"},
		{"busybox:1", "docker.io/library/busybox:1", "busybox:1", "library"},
		{"127.0.0.1:5000/acme/web:2", "127.0.0.1:5000/acme/web:2", "127.0.0.1:5000/acme/web:2", "acme"},
		{"ghcr.io/acme/team/web:1.4.2", "ghcr.io/acme/team/web:1.4.2", "ghcr.io/acme/team/web:1.4.2", "acme/team"},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.in)
		if err != nil {
			t.Fatalf("ParseRef(%q): %v", tt.in, err)
		}
		if r.String() != tt.want || r.Familiar() != tt.familiar || r.Namespace() != tt.ns {
			t.Errorf("ParseRef(%q) = %s / %s / %s, want %s / %s / %s", tt.in, r, r.Familiar(), r.Namespace(), tt.want, tt.familiar, tt.ns)
		}
	}
	if _, err := ParseRef("Not A Ref"); err == nil {
		t.Error("ParseRef accepted an invalid reference")
	}
}

// TestRefPartsAgreeWithTheParser: Familiar, Host and Namespace, worked out from the normalized
// name's parts, say what distribution/reference says of the same reference.
func TestRefPartsAgreeWithTheParser(t *testing.T) {
	digest := "sha256:" + sixtyFourHex
	for _, in := range []string{
		"busybox", "busybox:1", "library/busybox:1", "docker.io/library/busybox", "index.docker.io/library/busybox:1",
		"acme/web", "acme/web:1.4.2", "docker.io/acme/web", "acme/web@" + digest, "acme/web:1@" + digest,
		"acme/team/web:1", "docker.io/library/team/web:1", "library/team/web",
		"ghcr.io/acme/web:1", "ghcr.io/acme/team/web", "ghcr.io/library/web:2", "127.0.0.1:5000/acme/web:2",
		"localhost/web", "localhost:5000/library/web:1", "registry.example.com:8443/a/b/c/d:tag",
		"quay.io/web", "example.com/web@" + digest,
	} {
		r, err := ParseRef(in)
		if err != nil {
			t.Fatalf("ParseRef(%q): %v", in, err)
		}
		named, err := reference.ParseNormalizedNamed(r.String())
		if err != nil {
			t.Fatal(err)
		}
		path := reference.Path(named)
		ns := ""
		if i := strings.LastIndex(path, "/"); i >= 0 {
			ns = path[:i]
		}
		if got, want := r.Familiar(), reference.FamiliarString(named); got != want {
			t.Errorf("%q: Familiar %q, the parser says %q", in, got, want)
		}
		if got, want := r.Host(), reference.Domain(named); got != want {
			t.Errorf("%q: Host %q, the parser says %q", in, got, want)
		}
		if got := r.Namespace(); got != ns {
			t.Errorf("%q: Namespace %q, the parser's path says %q", in, got, ns)
		}
	}
	if got := (Ref{Name: "docker.io/acme/web"}).Familiar(); got != "acme/web" {
		t.Errorf("a name without tag: Familiar %q, want acme/web", got)
	}
}

func TestTracksTag(t *testing.T) {
	tests := []struct {
		svc, pushed string
		want        bool
	}{
		{"acme/web", "docker.io/acme/web:latest", true},
		{"acme/web:latest", "index.docker.io/acme/web", true},
		{"acme/web:1.2", "acme/web:latest", false},
		{"acme/web:latest", "acme/web:1.2", false},
		{"acme/api:latest", "acme/web:latest", false},
		{"acme/web@sha256:" + sixtyFourHex, "acme/web:latest", false},
		{"127.0.0.1:5000/acme/web:1", "acme/web:1", false},
	}
	for _, tt := range tests {
		s, _ := ParseRef(tt.svc)
		p, _ := ParseRef(tt.pushed)
		if got := TracksTag(s, p); got != tt.want {
			t.Errorf("TracksTag(%s, %s) = %v, want %v", tt.svc, tt.pushed, got, tt.want)
		}
	}
}

const sixtyFourHex = "deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"

func TestIsHost(t *testing.T) {
	for host, want := range map[string]bool{
		"registry.example.com": true, "registry.example.com:5000": true, "localhost:5000": true, "127.0.0.1:5000": true,
		"acme": false, "https://registry.example.com": false, "registry.example.com/acme": false, "": false,
	} {
		if got := IsHost(host); got != want {
			t.Errorf("IsHost(%q) = %v, want %v", host, got, want)
		}
	}
}
