package deployer

import (
	"context"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/registry"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ServiceStatus is what runs for one compose service, as the engine reports it.
type ServiceStatus struct {
	Project      string            `json:"project"`
	Service      string            `json:"service"`
	Image        string            `json:"image"`         // the reference the compose file names
	ImageID      string            `json:"image_id"`      // the image the first container runs (the local image when none runs)
	RepoDigest   string            `json:"repo_digest"`   // repository@sha256:… of that image in the registry, "" if never pulled
	ImageCreated time.Time         `json:"image_created"` // when the image was built
	ImageLabels  map[string]string `json:"image_labels"`  // the image's org.opencontainers.image.* labels
	Deploys      bool              `json:"deploys"`       // berth redeploys it on a push (berth.enable, OPT_IN)
	TagPolicy    string            `json:"tag_policy"`    // exact or semver (berth.tag-policy)
	Containers   []ContainerStatus `json:"containers"`
	FailedImages []FailedImage     `json:"failed_images"`            // images it rolled back from, which berth does not try again
	Watch        *WatchStatus      `json:"watch,omitempty"`          // watch mode's view, when it watches the service (watch.go)
	Previous     string            `json:"previous_image,omitempty"` // the image it ran before berth's last deploy, kept for RollBackService
}

// ContainerStatus is one container of a service.
type ContainerStatus struct {
	Name    string    `json:"name"`
	ID      string    `json:"id"`
	ImageID string    `json:"image_id"`
	State   string    `json:"state"`  // created, running, restarting, exited, …
	Health  string    `json:"health"` // healthy, unhealthy, starting; "" without a healthcheck
	Started time.Time `json:"started"`
}

// ociLabelPrefix marks the image annotations of the OCI image spec.
const ociLabelPrefix = "org.opencontainers.image."

// Services reports every service of the projects berth serves, sorted by project and service.
// A project that does not load is skipped (berth check says why).
func (d *Deployer) Services(ctx context.Context) ([]ServiceStatus, error) {
	projects, err := d.servedProjects(ctx, compose.Load, func(spec compose.Spec, err error) error {
		d.log.Warn("project does not load; left out of the status", "dir", spec.Dir, "err", err)
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := []ServiceStatus{}
	for _, sp := range projects {
		p := sp.project
		for _, name := range serviceNames(p) {
			s := p.Services[name]
			st, err := d.serviceStatus(ctx, p.Name, name, s.Image)
			if err != nil {
				return nil, err
			}
			st.Deploys = d.selects(s.Labels) == ""
			st.TagPolicy = tagPolicy(s.Labels)
			st.FailedImages = append(st.FailedImages, d.FailedImages(p.Name+"/"+name)...)
			if ws, ok := d.WatchStatus(p.Name + "/" + name); ok {
				st.Watch = &ws
			}
			st.Previous = d.keptImage(p.Name + "/" + name)
			out = append(out, st)
		}
	}
	return out, nil
}

func (d *Deployer) serviceStatus(ctx context.Context, project, service, image string) (ServiceStatus, error) {
	st := ServiceStatus{Project: project, Service: service, Image: image, ImageLabels: map[string]string{}, Containers: []ContainerStatus{}, FailedImages: []FailedImage{}}
	cs, err := d.serviceContainers(ctx, project, service)
	if err != nil {
		return st, err
	}
	for _, c := range cs {
		cst := ContainerStatus{Name: canonicalName(c), ID: c.ID, ImageID: c.ImageID, State: string(c.State)}
		res, err := d.eng.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err == nil && res.Container.State != nil {
			if h := res.Container.State.Health; h != nil {
				cst.Health = string(h.Status)
			}
			cst.Started, _ = time.Parse(time.RFC3339Nano, res.Container.State.StartedAt)
		}
		st.Containers = append(st.Containers, cst)
	}
	ref := image
	if len(cs) > 0 {
		ref = cs[0].ImageID
	}
	if ref == "" {
		return st, nil
	}
	img, err := d.eng.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return st, nil
	}
	if err != nil {
		return st, unavailable("inspect image "+ref, err)
	}
	st.ImageID = img.ID
	st.ImageCreated, _ = time.Parse(time.RFC3339Nano, img.Created)
	st.RepoDigest = repoDigest(img.RepoDigests, image)
	if img.Config != nil {
		for k, v := range img.Config.Labels {
			if strings.HasPrefix(k, ociLabelPrefix) {
				st.ImageLabels[k] = v
			}
		}
	}
	return st, nil
}

// repoDigest picks the repo digest of the service's own repository, else the first one.
func repoDigest(digests []string, image string) string {
	want, err := registry.ParseRef(image)
	for _, rd := range digests {
		got, perr := registry.ParseRef(rd)
		if err == nil && perr == nil && got.Name == want.Name {
			return rd
		}
	}
	if len(digests) > 0 {
		return digests[0]
	}
	return ""
}
