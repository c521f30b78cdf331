package deployer

import (
	"cmp"
	"context"
	"slices"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/moby/moby/client"
)

// The OCI annotation keys berth records for every deploy (and the status API serves).
const (
	LabelOCIVersion  = "org.opencontainers.image.version"
	LabelOCIRevision = "org.opencontainers.image.revision"
	LabelOCISource   = "org.opencontainers.image.source"
)

// ImageReport is an image's registry summary and the service containers running that reference.
type ImageReport struct {
	Image      registry.ImageInfo `json:"image"`
	Containers []RunningService   `json:"containers"`
}

// RunningService is a compose service container whose configured image is the inspected reference.
type RunningService struct {
	Project   string `json:"project"`
	Service   string `json:"service"`
	Container string `json:"container"`
	State     string `json:"state"`
	ImageID   string `json:"image_id"`
	// Current says whether the container runs the image the registry now serves for the ref.
	Current bool `json:"current"`
}

// ociLabels keeps the version, revision and source labels of an image's config, for history.
func ociLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	for _, k := range []string{LabelOCIVersion, LabelOCIRevision, LabelOCISource} {
		if v, ok := labels[k]; ok {
			out[k] = v
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// InspectImage fetches ref's manifest (or index) and config from its registry with berth's
// registry credentials, pulling no layers, and lists the service containers that run ref.
func (d *Deployer) InspectImage(ctx context.Context, ref string) (ImageReport, error) {
	rctx, cancel := d.registryContext(ctx, d.regTimeout)
	info, err := registry.Inspect(rctx, ref, d.keychain)
	cancel()
	if err != nil {
		return ImageReport{}, err
	}
	running, err := d.containersRunning(ctx, ref, info)
	if err != nil {
		return ImageReport{}, err
	}
	return ImageReport{Image: info, Containers: running}, nil
}

// containersRunning lists the compose containers whose configured image is ref.
func (d *Deployer) containersRunning(ctx context.Context, ref string, info registry.ImageInfo) ([]RunningService, error) {
	want, err := registry.ParseRef(ref)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "%v", err)
	}
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", compose.LabelProject)})
	if err != nil {
		return nil, unavailable("list containers", err)
	}
	out := []RunningService{}
	for _, c := range res.Items {
		// A container's Image is the reference it was created from (compose writes the service's).
		got, err := registry.ParseRef(c.Image)
		if err != nil || got.String() != want.String() {
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = c.Names[0][1:]
		}
		out = append(out, RunningService{Project: c.Labels[compose.LabelProject], Service: c.Labels[compose.LabelService], Container: name,
			State: string(c.State), ImageID: c.ImageID, Current: info.IsLocalID(c.ImageID)})
	}
	slices.SortFunc(out, func(a, b RunningService) int {
		return cmp.Compare(a.Project+"/"+a.Container, b.Project+"/"+b.Container)
	})
	return out, nil
}

// imageLabels is an image's config labels, empty when it has none.
func imageLabels(img client.ImageInspectResult) map[string]string {
	if img.Config == nil || img.Config.Labels == nil {
		return map[string]string{}
	}
	return img.Config.Labels
}
