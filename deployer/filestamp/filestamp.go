// Package filestamp tells whether a set of files changed since it was stamped, from one stat
// per file (size, mtime, ctime, inode; a missing file counts too), so that a cached load of
// them can be trusted without reading them again. It is a leaf: standard library only.
package filestamp

import (
	"crypto/sha256"
	"errors"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// RacyWindow is how close to the stamp a file's change may be for its metadata alone to be
// trusted: file systems keep coarse timestamps (a kernel tick, or a second), so a file
// rewritten with the same size in the same tick looks unchanged. Such a racy file is compared
// by content until its change is older than the window (as git does with its index).
const RacyWindow = 2 * time.Second

// Set is the stamp of some files, taken at one moment.
type Set struct {
	files []file
}

type file struct {
	path   string
	meta   meta
	racy   bool     // changed too close to the stamp: compare sum as well
	sum    [32]byte // content when racy
	exists bool
	// missing, on a directory's entry, are stamped files that did not exist in it: creating
	// one changes the directory, so one stat covers them all (each is looked at only while
	// the directory is racy).
	missing []string
}

// meta is what one stat says of a file.
type meta struct {
	size, mtime, ctime int64
	ino, dev           uint64
	mode               fs.FileMode
}

// Take stamps paths (duplicates once); a path that does not exist is stamped as missing, so
// its creation is a change.
func Take(paths []string) Set {
	paths = slices.Clone(paths)
	slices.Sort(paths)
	paths = slices.Compact(paths)
	now := time.Now()
	s := Set{files: make([]file, 0, len(paths))}
	dirs := map[string][]string{}
	for _, p := range paths {
		f := stamp(p, now)
		if !f.exists {
			dirs[filepath.Dir(p)] = append(dirs[filepath.Dir(p)], p)
			continue
		}
		s.files = append(s.files, f)
	}
	for _, dir := range slices.Sorted(maps.Keys(dirs)) {
		d := stamp(dir, now)
		d.sum, d.missing = [32]byte{}, dirs[dir]
		s.files = append(s.files, d)
	}
	return s
}

func stamp(path string, now time.Time) file {
	m, ok := statMeta(path)
	f := file{path: path, meta: m, exists: ok}
	if ok && isRacy(m, now) {
		f.racy = true
		if m.mode.IsDir() {
			return f
		}
		f.sum, _ = sumOf(path)
	}
	return f
}

// Paths is the stamped files, those that exist first.
func (s Set) Paths() []string {
	var out []string
	for _, f := range s.files {
		if f.missing != nil {
			out = append(out, f.missing...)
		} else {
			out = append(out, f.path)
		}
	}
	return out
}

// Changed says whether any stamped file differs now from its stamp: created, removed,
// replaced, resized, touched, or (when racy) rewritten in place.
func (s Set) Changed() bool {
	for _, f := range s.files {
		if f.changed() {
			return true
		}
	}
	return false
}

func (f file) changed() bool {
	m, ok := statMeta(f.path)
	if ok != f.exists || m != f.meta {
		return true
	}
	if f.racy && f.missing != nil {
		// The directory changed within a timestamp tick of the stamp: look at each file.
		return slices.ContainsFunc(f.missing, func(p string) bool { _, ok := statMeta(p); return ok })
	}
	if f.racy {
		sum, err := sumOf(f.path)
		return err != nil || sum != f.sum
	}
	return false
}

// Settled returns s with the racy files whose change is now older than RacyWindow
// re-stamped by metadata alone (their content was checked unchanged), and whether it did:
// a set is compared by content only while it must be.
func (s Set) Settled() (Set, bool) {
	now := time.Now()
	var out Set
	settled := false
	for i, f := range s.files {
		if !f.racy || isRacy(f.meta, now) || f.changed() {
			continue
		}
		if !settled {
			out = Set{files: slices.Clone(s.files)}
			settled = true
		}
		out.files[i].racy, out.files[i].sum = false, [32]byte{}
	}
	if !settled {
		return s, false
	}
	return out, true
}

// Racy says whether some file is still compared by content.
func (s Set) Racy() bool {
	return slices.ContainsFunc(s.files, func(f file) bool { return f.racy })
}

func isRacy(m meta, now time.Time) bool {
	edge := now.Add(-RacyWindow).UnixNano()
	return m.mtime >= edge || m.ctime >= edge
}

func statMeta(path string) (meta, bool) {
	fi, err := os.Stat(path)
	if err != nil {
		// Unreadable counts as missing: a load would fail the same way, and a later fix changes it.
		return meta{}, false
	}
	m := meta{size: fi.Size(), mtime: fi.ModTime().UnixNano(), mode: fi.Mode()}
	m.ino, m.dev, m.ctime = sysMeta(fi)
	return m, true
}

func sumOf(path string) ([32]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}
