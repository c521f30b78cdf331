package deployer

import (
	"context"
	"log/slog"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/state"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// cleanupImages runs after a successful deploy of service: the images its old containers ran
// join the service's list of replaced images, newest first; the first KeepImages stay for a
// rollback by hand, the others are removed if nothing needs them. Failures are only logged: a
// leftover image costs disk, never a deploy.
func (d *Deployer) cleanupImages(ctx context.Context, log *slog.Logger, service string, jn *state.Journal, current string) {
	d.images.Lock()
	defer d.images.Unlock()
	list := d.replaced.load(log, service)
	for _, sw := range jn.Swaps {
		if sw.OldImage != "" && sw.OldImage != current {
			list = slices.DeleteFunc(list, func(id string) bool { return id == sw.OldImage })
			list = append([]string{sw.OldImage}, list...)
		}
	}
	list = slices.DeleteFunc(list, func(id string) bool { return id == current })
	keep := list[:min(d.keepImages, len(list))]
	for _, id := range list[len(keep):] {
		if err := d.removeImage(ctx, log, id); err != nil {
			log.Warn("old image not removed", "image_id", id, "err", err)
		}
	}
	d.replaced.save(log, service, slices.Clone(keep))
}

// removeImage removes a replaced image by reference, without force, and only when it carries
// no tag and no container (running or not) was made from it: an image someone tagged or uses
// is theirs. Removing by reference also means a tag added meanwhile survives.
func (d *Deployer) removeImage(ctx context.Context, log *slog.Logger, id string) error {
	img, err := d.eng.ImageInspect(ctx, id)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(img.RepoTags) > 0 {
		log.Info("old image kept: it carries a tag", "image_id", id, "tags", img.RepoTags)
		return nil
	}
	users, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("ancestor", id)})
	if err != nil {
		return err
	}
	if len(users.Items) > 0 {
		log.Info("old image kept: a container uses it", "image_id", id, "container", canonicalName(users.Items[0]))
		return nil
	}
	refs := img.RepoDigests
	if len(refs) == 0 {
		// The containerd image store keeps an image whose last name moved away under a name of
		// its own, which exists only while nothing else names the image; the classic store has
		// no such name and answers "not found".
		refs = []string{danglingPrefix + img.ID}
	}
	for _, ref := range refs {
		_, err := d.eng.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true})
		if cerrdefs.IsNotFound(err) && len(img.RepoDigests) == 0 {
			log.Info("old image kept: it has no reference to remove it by", "image_id", id)
			return nil
		}
		if err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	log.Info("old image removed", "image_id", id, "refs", refs)
	return nil
}

// danglingPrefix names, on the containerd image store, an image no tag or digest names.
const danglingPrefix = "moby-dangling@"

// imageLists keeps one list of images per service, keyed "project/service" as deploys name
// services, in STATE_DIR (see state.ImageLists) or in memory; failures are only logged. The
// caller holds Deployer.images.
type imageLists[T any] struct {
	lists *state.ImageLists[T]
	kind  state.ListKind
}

func newImageLists[T any](dir state.Dir, kind state.ListKind) *imageLists[T] {
	return &imageLists[T]{lists: state.NewImageLists[T](dir, kind), kind: kind}
}

func (l *imageLists[T]) load(log *slog.Logger, service string) []T {
	project, name, _ := strings.Cut(service, "/")
	list, err := l.lists.Load(project, name)
	if err != nil {
		log.Warn("read "+string(l.kind)+" image list", "service", service, "err", err)
	}
	return list
}

func (l *imageLists[T]) save(log *slog.Logger, service string, list []T) {
	project, name, _ := strings.Cut(service, "/")
	if err := l.lists.Save(project, name, list); err != nil {
		log.Warn("save "+string(l.kind)+" image list", "service", service, "err", err)
	}
}
