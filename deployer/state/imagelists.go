package state

import (
	"fmt"
	"slices"
)

// ImageLists keeps one list of images per service of one kind, in STATE_DIR or, when the Dir is
// not persistent, in memory. It does not lock: its caller serializes the calls.
type ImageLists[T any] struct {
	dir  Dir
	kind ListKind
	mem  map[[2]string][]T // project and service
}

// NewImageLists returns the lists of kind kept in d.
func NewImageLists[T any](d Dir, kind ListKind) *ImageLists[T] {
	return &ImageLists[T]{dir: d, kind: kind, mem: map[[2]string][]T{}}
}

// imageListFile is a list's file: {"images": [...]}.
type imageListFile[T any] struct {
	Images []T `json:"images"`
}

// Load returns the project's service's list; without a file of its own, the one an earlier
// berth kept under the legacy name, if any.
func (l *ImageLists[T]) Load(project, service string) ([]T, error) {
	if !l.dir.Persistent() {
		return slices.Clone(l.mem[[2]string{project, service}]), nil
	}
	var f imageListFile[T]
	ok, err := readJSON(l.dir.imageList(l.kind, project, service), &f)
	if !ok && err == nil {
		_, err = readJSON(l.dir.legacyImageList(l.kind, project, service), &f)
	}
	if err != nil {
		return f.Images, fmt.Errorf("read %s image list of %s/%s: %w", l.kind, project, service, err)
	}
	return f.Images, nil
}

// Save replaces the project's service's list; a legacy file stays, for it may be another
// pair's too, but is no longer read.
func (l *ImageLists[T]) Save(project, service string, list []T) error {
	if !l.dir.Persistent() {
		l.mem[[2]string{project, service}] = list
		return nil
	}
	if err := writeJSON(l.dir.imageList(l.kind, project, service), imageListFile[T]{Images: list}); err != nil {
		return fmt.Errorf("save %s image list of %s/%s: %w", l.kind, project, service, err)
	}
	return nil
}
