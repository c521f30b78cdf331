package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"

	"github.com/compose-spec/compose-go/v2/types"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"
)

// redeploy pulls the service's image and recreates its containers on it. Nothing is stopped
// until the pull has succeeded and the replacement container exists.
func (d *Deployer) redeploy(ctx context.Context, log *slog.Logger, j job, rec *Record) error {
	p, err := loadProject(ctx, j.project)
	if err != nil {
		return err
	}
	s, ok := p.Services[j.service]
	if !ok {
		return Errorf(KindNotFound, "service %s is no longer in project %s", j.service, p.Name)
	}
	if err := checkSupported(p, s); err != nil {
		return err
	}
	if err := d.resolveServiceReferences(ctx, p, &s); err != nil {
		return err
	}
	gate, err := gateFor(d.gate, s.Labels)
	if err != nil {
		return err
	}
	hooks, err := hooksFor(s.Labels)
	if err != nil {
		return err
	}
	if !j.dependent {
		log.Info("pull", "ref", s.Image)
		if err := d.pullPinned(ctx, s.Image, j.req.Digest); err != nil {
			return err
		}
	}
	img, err := d.eng.ImageInspect(ctx, s.Image)
	if err != nil {
		return fmt.Errorf("inspect pulled image %s: %w", s.Image, err)
	}
	imageVolumes := map[string]struct{}{}
	if img.Config != nil {
		imageVolumes = img.Config.Volumes
		rec.ImageLabels = ociLabels(img.Config.Labels)
	}
	if gate.Enabled() && !j.dependent {
		log.Info("gate", "kind", cmp.Or(gate.Image, gate.URL), "timeout", gate.Timeout)
		res, err := d.runGate(ctx, gate, gateRequest{Project: p.Name, Service: s.Name, Image: s.Image, ImageID: img.ID,
			Repository: j.req.Repository, Tag: j.req.Tag, Digest: j.req.Digest, Source: j.req.Source, Pusher: j.req.Pusher,
			Labels: imageLabels(img)})
		rec.Gate = &res
		if err != nil {
			return err
		}
		log.Info("gate passed", "took", res.Took)
	}
	existing, err := d.serviceContainers(ctx, p.Name, s.Name)
	if err != nil {
		return err
	}
	version := composeVersion(d.version, existing)
	hash, err := serviceHash(s, version)
	if err != nil {
		return err
	}
	if err := d.ensureNetworks(ctx, p, s, version); err != nil {
		return err
	}
	if err := d.ensureVolumes(ctx, p, s, version); err != nil {
		return err
	}

	byNumber := map[int]container.Summary{}
	for _, c := range existing {
		n, _ := strconv.Atoi(c.Labels[labelNumber])
		byNumber[n] = c
	}
	for n := 1; n <= serviceReplicas(s); n++ {
		name := containerName(p.Name, s, n)
		old, had := byNumber[n]
		replaces := ""
		var inherited []container.MountPoint
		if had {
			replaces = s.Name + "-" + strconv.Itoa(n)
			if s.ContainerName != "" {
				replaces = s.ContainerName
			}
			inherited = old.Mounts
		}
		labels := containerLabels(s, hash, img.ID, version, n, replaces)
		spec, err := buildCreateSpec(p, s, n, labels, imageVolumes, inherited)
		if err != nil {
			return err
		}
		if !had {
			log.Info("create", "container", name)
			id, err := d.createAndStart(ctx, name, name, spec)
			if err != nil {
				return err
			}
			if err := d.postStart(ctx, log, hooks, id, name); err != nil {
				return err
			}
			continue
		}
		if err := d.replace(ctx, log, old, name, spec, hooks); err != nil {
			return err
		}
	}
	return d.followDependents(ctx, log, j, p)
}

// replace swaps old for a container made from spec the way compose does: create under a
// temporary name while old still runs, stop and remove old, then rename and start the new one.
// A failed create leaves old untouched.
func (d *Deployer) replace(ctx context.Context, log *slog.Logger, old container.Summary, name string, spec createSpec, hooks Hooks) error {
	tmp := old.ID[:12] + "_" + name
	log.Info("create", "container", tmp)
	id, err := d.create(ctx, tmp, spec)
	if err != nil {
		return err
	}
	if hooks.PreStop != "" && old.State == container.StateRunning {
		log.Info("hook", "hook", "pre-stop", "container", name)
		if err := d.runHook(ctx, "pre-stop", old.ID, hooks.PreStop, hooks.Timeout); err != nil {
			d.discard(ctx, id)
			return fmt.Errorf("%s: %w; nothing was stopped", name, err)
		}
	}
	log.Info("stop", "container", name)
	if _, err := d.eng.ContainerStop(ctx, old.ID, client.ContainerStopOptions{}); err != nil {
		d.discard(ctx, id)
		return fmt.Errorf("stop %s: %w", name, err)
	}
	log.Info("remove", "container", name)
	if _, err := d.eng.ContainerRemove(ctx, old.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	if _, err := d.eng.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: name}); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, name, err)
	}
	log.Info("start", "container", name)
	if _, err := d.eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return d.postStart(ctx, log, hooks, id, name)
}

// postStart runs the service's post-start hook in its new container, if it declares one.
func (d *Deployer) postStart(ctx context.Context, log *slog.Logger, hooks Hooks, id, name string) error {
	if hooks.PostStart == "" {
		return nil
	}
	log.Info("hook", "hook", "post-start", "container", name)
	if err := d.runHook(ctx, "post-start", id, hooks.PostStart, hooks.Timeout); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// imageLabels is an image's config labels, empty when it has none.
func imageLabels(img client.ImageInspectResult) map[string]string {
	if img.Config == nil || img.Config.Labels == nil {
		return map[string]string{}
	}
	return img.Config.Labels
}

// create makes the container and attaches its secondary networks; on failure nothing is left.
func (d *Deployer) create(ctx context.Context, name string, spec createSpec) (string, error) {
	res, err := d.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: spec.Config, HostConfig: spec.Host, NetworkingConfig: spec.Network,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	for _, nw := range slices.Sorted(maps.Keys(spec.Secondary)) {
		if _, err := d.eng.NetworkConnect(ctx, nw, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: spec.Secondary[nw]}); err != nil {
			d.discard(ctx, res.ID)
			return "", fmt.Errorf("connect %s to network %s: %w", name, nw, err)
		}
	}
	return res.ID, nil
}

func (d *Deployer) createAndStart(ctx context.Context, name, display string, spec createSpec) (string, error) {
	id, err := d.create(ctx, name, spec)
	if err != nil {
		return "", err
	}
	if _, err := d.eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return id, fmt.Errorf("start %s: %w", display, err)
	}
	return id, nil
}

// discard removes a container berth created and could not use; cleanup must not hide the
// original error, so its own failure is only logged.
func (d *Deployer) discard(ctx context.Context, id string) {
	if _, err := d.eng.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		d.log.Warn("remove unused container", "id", id, "err", err)
	}
}

// serviceContainers lists the service's containers the way compose finds them, by label,
// ordered by replica number.
func (d *Deployer) serviceContainers(ctx context.Context, project, service string) ([]container.Summary, error) {
	f := client.Filters{}.Add("label", labelProject+"="+project, labelService+"="+service, labelOneoff+"=False")
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, unavailable("list containers of "+service, err)
	}
	out := res.Items
	slices.SortFunc(out, func(a, b container.Summary) int {
		na, _ := strconv.Atoi(a.Labels[labelNumber])
		nb, _ := strconv.Atoi(b.Labels[labelNumber])
		return cmp.Compare(na, nb)
	})
	return out, nil
}

// pull fetches ref and fails unless the engine reports the whole pull succeeded.
func (d *Deployer) pull(ctx context.Context, ref string) error {
	resp, err := d.eng.ImagePull(ctx, ref, client.ImagePullOptions{})
	if err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	defer resp.Close()
	if err := resp.Wait(ctx); err != nil {
		return fmt.Errorf("pull %s: %w", ref, err)
	}
	return nil
}

// ensureNetworks creates the project networks the service needs and that do not exist yet,
// labelled as compose labels them, so that a later `docker compose up` adopts them.
func (d *Deployer) ensureNetworks(ctx context.Context, p *types.Project, s types.ServiceConfig, version string) error {
	d.resources.Lock() // two services deployed at once must not both create the network
	defer d.resources.Unlock()
	for key := range s.Networks {
		n, ok := p.Networks[key]
		if !ok {
			return Errorf(KindInvalid, "service %s uses network %s, which the project does not define", s.Name, key)
		}
		res, err := d.eng.NetworkList(ctx, client.NetworkListOptions{Filters: client.Filters{}.Add("name", n.Name)})
		if err != nil {
			return unavailable("list networks", err)
		}
		if slices.ContainsFunc(res.Items, func(x network.Summary) bool { return x.Name == n.Name }) {
			continue
		}
		if bool(n.External) {
			return Errorf(KindInvalid, "external network %s does not exist; create it first", n.Name)
		}
		hash, err := networkHash(n)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, v := range n.Labels {
			labels[k] = v
		}
		labels[labelNetwork] = key
		labels[labelProject] = p.Name
		labels[labelVersion] = version
		labels[labelConfigHash] = hash
		if _, err := d.eng.NetworkCreate(ctx, n.Name, client.NetworkCreateOptions{
			Driver: n.Driver, Options: n.DriverOpts, Internal: n.Internal, Attachable: n.Attachable, Labels: labels,
		}); err != nil {
			return fmt.Errorf("create network %s: %w", n.Name, err)
		}
	}
	return nil
}

// ensureVolumes does for named volumes what ensureNetworks does for networks.
func (d *Deployer) ensureVolumes(ctx context.Context, p *types.Project, s types.ServiceConfig, version string) error {
	d.resources.Lock()
	defer d.resources.Unlock()
	for _, v := range s.Volumes {
		if v.Type != types.VolumeTypeVolume || v.Source == "" {
			continue
		}
		vol, ok := p.Volumes[v.Source]
		if !ok {
			return Errorf(KindInvalid, "service %s uses volume %s, which the project does not define", s.Name, v.Source)
		}
		if _, err := d.eng.VolumeInspect(ctx, vol.Name, client.VolumeInspectOptions{}); err == nil {
			continue
		} else if !cerrdefs.IsNotFound(err) {
			return unavailable("inspect volume "+vol.Name, err)
		}
		if bool(vol.External) {
			return Errorf(KindInvalid, "external volume %s does not exist; create it first", vol.Name)
		}
		hash, err := volumeHash(vol)
		if err != nil {
			return err
		}
		labels := map[string]string{}
		for k, val := range vol.Labels {
			labels[k] = val
		}
		labels[labelVolume] = v.Source
		labels[labelProject] = p.Name
		labels[labelVersion] = version
		labels[labelConfigHash] = hash
		if _, err := d.eng.VolumeCreate(ctx, client.VolumeCreateOptions{Name: vol.Name, Driver: vol.Driver, DriverOpts: vol.DriverOpts, Labels: labels}); err != nil {
			return fmt.Errorf("create volume %s: %w", vol.Name, err)
		}
	}
	return nil
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Kind: KindUnavailable, Msg: what + ": " + err.Error(), Err: err}
}
