package deployer

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
)

// DeployService redeploys one service by hand (berth deploy): as if ref had been pushed, with
// the same checks (OWNER, labels, berth's own service) and the same queue as a webhook's push.
// service is "service" or "project/service"; ref "" is the image the compose file names.
func (d *Deployer) DeployService(ctx context.Context, service, ref string) (Ticket, error) {
	key, image, err := d.findService(ctx, service)
	if err != nil {
		return Ticket{}, err
	}
	if ref == "" {
		ref = image
	}
	req, err := RequestFor(ref)
	if err != nil {
		return Ticket{}, err
	}
	return d.deployOne(ctx, key, image, req)
}

// RollBackService puts service back on the newest image berth keeps from before its last
// deploy (KEEP_IMAGES), as a deploy by hand of that image's digest under the compose file's
// reference: the same queue, checks, health gate and record as any deploy.
func (d *Deployer) RollBackService(ctx context.Context, service string) (Ticket, error) {
	key, image, err := d.findService(ctx, service)
	if err != nil {
		return Ticket{}, err
	}
	previous := d.keptImage(key)
	if previous == "" {
		return Ticket{}, fault.Errorf(fault.NotFound, "berth keeps no image %s ran before its last deploy (it keeps KEEP_IMAGES images replaced by its own deploys)", key)
	}
	req, err := RequestFor(image)
	if err != nil {
		return Ticket{}, err
	}
	img, err := d.eng.ImageInspect(ctx, previous)
	if err != nil {
		return Ticket{}, unavailable("inspect the previous image "+shortImageID(previous), err)
	}
	rd := repoDigest(img.RepoDigests, image)
	if rd == "" && img.Descriptor != nil {
		// The containerd image store drops an untagged image's repo digests but keeps the
		// descriptor it was pulled by: that digest is what the repository serves.
		rd = req.Repository + "@" + img.Descriptor.Digest.String()
	}
	named, _ := registry.ParseRef(rd)
	if rd == "" || named.Name != req.Repository {
		return Ticket{}, fault.Errorf(fault.Conflict, "the previous image %s of %s has no digest in %s, so no reference names it; deploy it with `berth deploy %s --image <repository:tag@digest>`",
			shortImageID(previous), key, req.Repository, key)
	}
	req.Source, req.Digest = "rollback", named.Digest
	return d.deployOne(ctx, key, image, req)
}

// keptImage is the newest image service (project/service) ran before its last deploy, or "".
func (d *Deployer) keptImage(service string) string {
	d.images.Lock()
	defer d.images.Unlock()
	if list := d.replaced.load(d.log, service); len(list) > 0 {
		return list[0]
	}
	return ""
}

// deployOne queues req for service key only, as a deploy by hand: a push of req that would not
// redeploy key (another image, or left out by its labels) is refused.
func (d *Deployer) deployOne(ctx context.Context, key, image string, req Request) (Ticket, error) {
	t, jobs, err := d.match(ctx, req)
	if err != nil {
		return Ticket{}, err
	}
	i := slices.Index(t.Services, key)
	if i < 0 {
		return Ticket{}, fault.Errorf(fault.Conflict, "a push of %s would not redeploy %s: its compose image is %s, or a berth.enable label or OPT_IN leaves it out (see berth's log)",
			t.Image, key, image)
	}
	t.Services = []string{key}
	jobs[i].manual = true
	d.submit(t, jobs[i:i+1])
	return t, nil
}

// findService resolves service to "project/service" and the image its compose file names.
func (d *Deployer) findService(ctx context.Context, service string) (key, image string, err error) {
	wantProject, wantService, qualified := strings.Cut(service, "/")
	if !qualified {
		wantProject, wantService = "", service
	}
	projects, err := d.servedProjects(ctx, compose.Load, func(spec compose.Spec, err error) error {
		if d.discover { // one broken project on the host must not stop deploys of the others
			d.log.Warn("discovered project does not load; skipped", "project", spec.Name, "err", err)
			return nil
		}
		return err
	})
	if err != nil {
		return "", "", err
	}
	var found []string
	images := map[string]string{}
	for _, sp := range projects {
		p := sp.project
		if wantProject != "" && p.Name != wantProject {
			continue
		}
		if s, ok := p.Services[wantService]; ok {
			k := p.Name + "/" + wantService
			found = append(found, k)
			images[k] = s.Image
		}
	}
	switch len(found) {
	case 0:
		return "", "", fault.Errorf(fault.NotFound, "no project berth serves has a service %s", service)
	case 1:
		return found[0], images[found[0]], nil
	}
	return "", "", fault.Errorf(fault.Invalid, "service %s is in several projects (%s); name one as project/service", service,
		strings.Join(slices.Sorted(maps.Keys(images)), ", "))
}

// RequestFor turns an image reference (repo:tag, optionally @digest) into a push request.
func RequestFor(ref string) (Request, error) {
	r, err := registry.ParseRef(ref)
	if err != nil {
		return Request{}, fault.Errorf(fault.Invalid, "%w", err)
	}
	if r.Tag == "" {
		return Request{}, fault.Errorf(fault.Invalid, "image %s has no tag; give repository:tag (optionally @digest)", ref)
	}
	return Request{Source: "cli", Repository: r.Name, Tag: r.Tag, Digest: r.Digest}, nil
}
