package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// ImageInfo is an image's manifest summary as its registry serves it, read without pulling layers.
type ImageInfo struct {
	Ref       string `json:"ref"`        // the reference asked for, fully qualified
	Digest    string `json:"digest"`     // the digest of what the tag names: an index or a manifest
	MediaType string `json:"media_type"` // that manifest's or index's media type
	// Platforms lists every platform an index offers, or the image's own for a single manifest.
	Platforms []string `json:"platforms"`
	// Platform is the one summarized below: the engine's (linux/GOARCH) when the ref is an index.
	Platform       string            `json:"platform"`
	ManifestDigest string            `json:"manifest_digest"` // the summarized platform's manifest
	ConfigDigest   string            `json:"config_digest"`   // the image ID once pulled, on the classic image store
	Created        time.Time         `json:"created,omitzero"`
	Labels         map[string]string `json:"labels"`
	ExposedPorts   []string          `json:"exposed_ports"`
	Layers         int               `json:"layers"`
	Size           int64             `json:"size"` // compressed layers plus config, as stored in the registry
	History        []HistoryEntry    `json:"history"`
}

// IsLocalID says whether id, an image ID as an engine reports it, is this image: the classic
// image store names an image by its config digest, the containerd image store by the digest
// it was pulled by (the index the tag names, or the platform's manifest).
func (info ImageInfo) IsLocalID(id string) bool {
	return id != "" && (id == info.ConfigDigest || id == info.Digest || id == info.ManifestDigest)
}

// HistoryEntry is one step of an image's build history, oldest first.
type HistoryEntry struct {
	Created    time.Time `json:"created,omitzero"`
	CreatedBy  string    `json:"created_by"`
	Comment    string    `json:"comment,omitempty"`
	EmptyLayer bool      `json:"empty_layer"`
}

// Inspect reads ref's manifest summary from its registry, authenticating with kc (anonymous
// when nil). Registries on loopback or private addresses are
// spoken to over plain HTTP, as the Docker CLI does for localhost.
func Inspect(ctx context.Context, ref string, kc authn.Keychain) (ImageInfo, error) {
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		return ImageInfo{}, fault.Errorf(fault.Invalid, "image reference %q: %v", ref, err)
	}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuthFromKeychain(kc)}
	desc, err := remote.Get(r, opts...)
	if err != nil {
		return ImageInfo{}, registryError(r, err)
	}
	info := ImageInfo{Ref: r.Name(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType), Platforms: []string{}}
	var img v1.Image
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return ImageInfo{}, registryError(r, err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			return ImageInfo{}, registryError(r, err)
		}
		for _, m := range im.Manifests {
			if m.Platform != nil && m.Platform.OS != "unknown" { // attestations list as unknown/unknown
				info.Platforms = append(info.Platforms, m.Platform.String())
			}
		}
		want := v1.Platform{OS: "linux", Architecture: runtime.GOARCH}
		img, err = remote.Image(r, append(opts, remote.WithPlatform(want))...)
		if err != nil {
			return ImageInfo{}, registryError(r, fmt.Errorf("no %s image in the index: %w", want.String(), err))
		}
	} else {
		img, err = desc.Image()
		if err != nil {
			return ImageInfo{}, registryError(r, err)
		}
	}
	if err := summarize(img, &info); err != nil {
		return ImageInfo{}, registryError(r, err)
	}
	return info, nil
}

// summarize fills info from one platform's image: its manifest and config, never its layers.
func summarize(img v1.Image, info *ImageInfo) error {
	m, err := img.Manifest()
	if err != nil {
		return err
	}
	md, err := img.Digest()
	if err != nil {
		return err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return err
	}
	info.ManifestDigest, info.ConfigDigest = md.String(), m.Config.Digest.String()
	info.Layers = len(m.Layers)
	info.Size = m.Config.Size
	for _, l := range m.Layers {
		info.Size += l.Size
	}
	if p := cf.Platform(); p != nil {
		info.Platform = p.String()
		if len(info.Platforms) == 0 {
			info.Platforms = []string{info.Platform}
		}
	}
	info.Created = cf.Created.Time
	info.Labels = cf.Config.Labels
	if info.Labels == nil {
		info.Labels = map[string]string{}
	}
	info.ExposedPorts = slices.Sorted(maps.Keys(cf.Config.ExposedPorts))
	if info.ExposedPorts == nil {
		info.ExposedPorts = []string{}
	}
	info.History = []HistoryEntry{}
	for _, h := range cf.History {
		info.History = append(info.History, HistoryEntry{Created: h.Created.Time, CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: h.EmptyLayer})
	}
	return nil
}

// registryError gives a registry failure its kind and a message that says what to fix.
func registryError(r name.Reference, err error) error {
	host := r.Context().RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return &fault.Error{Kind: fault.Forbidden, Err: err, Msg: fmt.Sprintf("registry %s refused access to %s (%d %s): "+
				"berth has no valid credentials for %s; run `docker login %s` for the config.json berth reads (DOCKER_CONFIG) and retry",
				host, r.Name(), te.StatusCode, http.StatusText(te.StatusCode), host, host)}
		}
		// Only the status: the answer's body is the remote's, and must not be echoed to
		// whoever asked (the read API can name any host berth can reach).
		answered := fmt.Sprintf("%d %s", te.StatusCode, http.StatusText(te.StatusCode))
		switch {
		case te.StatusCode == http.StatusNotFound:
			return &fault.Error{Kind: fault.NotFound, Err: err, Msg: fmt.Sprintf("registry %s has no image %s (%s)", host, r.Name(), answered)}
		case te.StatusCode >= 500:
			return &fault.Error{Kind: fault.Unavailable, Err: err, Msg: fmt.Sprintf("registry %s answered %s", host, answered)}
		}
		return &fault.Error{Kind: fault.Invalid, Err: err, Msg: fmt.Sprintf("registry %s answered %s", host, answered)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &fault.Error{Kind: fault.Unavailable, Err: err, Msg: fmt.Sprintf("registry %s did not answer in time: %v", host, err)}
	}
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) {
		return &fault.Error{Kind: fault.Unavailable, Err: err, Msg: fmt.Sprintf("registry %s is unreachable: %v", host, err)}
	}
	return &fault.Error{Kind: fault.Unavailable, Err: err, Msg: fmt.Sprintf("inspect %s at registry %s: %v", r.Name(), host, err)}
}
