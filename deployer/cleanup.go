package deployer

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// cleanupImages runs after a successful deploy of service: the images its old containers ran
// join the service's list of replaced images, newest first; the first KeepImages stay for a
// rollback by hand, the others are removed if nothing needs them. Failures are only logged: a
// leftover image costs disk, never a deploy.
func (d *Deployer) cleanupImages(ctx context.Context, log *slog.Logger, service string, jn *journal, current string) {
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

// removeImage removes a replaced image by its repository digests, without force, and only when
// it carries no tag and no container (running or not) was made from it: an image someone
// tagged or uses is theirs. Removing by reference also means a tag added meanwhile survives.
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
	if len(img.RepoDigests) == 0 {
		log.Info("old image kept: it has no reference to remove it by", "image_id", id)
		return nil
	}
	for _, ref := range img.RepoDigests {
		if _, err := d.eng.ImageRemove(ctx, ref, client.ImageRemoveOptions{PruneChildren: true}); err != nil && !cerrdefs.IsNotFound(err) {
			return err
		}
	}
	log.Info("old image removed", "image_id", id, "refs", img.RepoDigests)
	return nil
}

// imageLists keeps one JSON list of images per service, in STATE_DIR/<dir>/<service>.json or,
// without STATE_DIR, in memory. The caller holds Deployer.images.
type imageLists[T any] struct {
	stateDir, dir string
	mem           map[string][]T
}

func newImageLists[T any](stateDir, dir string) *imageLists[T] {
	return &imageLists[T]{stateDir: stateDir, dir: dir, mem: map[string][]T{}}
}

// imageListFile is a list's file: {"images": [...]}.
type imageListFile[T any] struct {
	Images []T `json:"images"`
}

func (l *imageLists[T]) path(service string) string {
	return filepath.Join(l.stateDir, l.dir, safeFileName(service)+".json")
}

func (l *imageLists[T]) load(log *slog.Logger, service string) []T {
	if l.stateDir == "" {
		return slices.Clone(l.mem[service])
	}
	var f imageListFile[T]
	if err := readState(l.path(service), &f); err != nil {
		log.Warn("read "+l.dir+" image list", "service", service, "err", err)
	}
	return f.Images
}

func (l *imageLists[T]) save(log *slog.Logger, service string, list []T) {
	if l.stateDir == "" {
		l.mem[service] = list
		return
	}
	if err := writeState(l.path(service), imageListFile[T]{Images: list}); err != nil {
		log.Warn("save "+l.dir+" image list", "service", service, "err", err)
	}
}

// readState reads the JSON state file at path into v; a missing file leaves v as it is.
func readState(path string, v any) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// writeState replaces the JSON state file at path with v (see replaceFile).
func writeState(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return replaceFile(path, b)
}

// replaceFile replaces the file at path with b: a temporary file beside it, synced, then
// renamed over it, so a crash leaves the old content or the new, never a part.
func replaceFile(path string, b []byte) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil { // the rename must not land before the data
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
