// Package state is the one map of STATE_DIR: every file and folder berth keeps there is named
// here, and written here, atomically.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dir is STATE_DIR, the directory whose contents survive a restart of berth; the zero Dir (root
// "") persists nothing and every caller keeps its state in memory. The layout:
//
//	deploys.jsonl                the deploy history, one JSON record a line (History)
//	deploys.jsonl.lock           held while a process writes the history
//	accepted.jsonl               pushes answered 202, and the ends of their deploys (Accepted)
//	deployed.json                per service, the push it last deployed (DeployedPushes)
//	watch.json                   per watched service, the new digest seen, since when, approved or rejected (Watched)
//	journal/<project>+<service>.json  an unfinished deploy of the service (Journal)
//	locks/<project>+<service>.lock    held by the process deploying the service (Lock)
//	images/<project>+<service>.json   images the service ran before, kept for a rollback by hand
//	failed/<project>+<service>.json   images the service rolled back from
//	acme/                        the ACME account key and certificates (ACME)
//
// <project> and <service> are escaped (see escape): '+' never survives escaping, so each file
// name maps back to exactly one project and service. Berth before this layout named a pair
// project+"__"+service (journal, locks) or project+"/"+service (images, failed) with every
// character outside [A-Za-z0-9_.-] turned into '_', so `shop/web_api` and `shop_web/api`
// shared files; those legacy files are still read (see Journals, Pending and ImageLists.Load)
// and never written.
type Dir struct {
	root string
}

// New returns the map of the STATE_DIR at root; "" keeps everything in memory.
func New(root string) Dir {
	return Dir{root: root}
}

// Persistent says whether d keeps files at all.
func (d Dir) Persistent() bool {
	return d.root != ""
}

// ACME is the folder the ACME client caches its account key and certificates in.
func (d Dir) ACME() string {
	return filepath.Join(d.root, "acme")
}

// ListKind names one kind of per-service image list, and its folder.
type ListKind string

// The per-service image lists berth keeps.
const (
	ReplacedImages ListKind = "images" // images a service ran before, kept for a rollback by hand
	FailedImages   ListKind = "failed" // images a service rolled back from
)

func (d Dir) historyFile() string  { return filepath.Join(d.root, "deploys.jsonl") }
func (d Dir) historyLock() string  { return d.historyFile() + ".lock" }
func (d Dir) acceptedFile() string { return filepath.Join(d.root, "accepted.jsonl") }
func (d Dir) journalDir() string   { return filepath.Join(d.root, "journal") }
func (d Dir) deployedFile() string { return filepath.Join(d.root, "deployed.json") }
func (d Dir) watchFile() string    { return filepath.Join(d.root, "watch.json") }

func (d Dir) journal(project, service string) string {
	return filepath.Join(d.journalDir(), pairName(project, service)+".json")
}

func (d Dir) lock(project, service string) string {
	return filepath.Join(d.root, "locks", pairName(project, service)+".lock")
}

func (d Dir) imageList(kind ListKind, project, service string) string {
	return filepath.Join(d.root, string(kind), pairName(project, service)+".json")
}

// legacyJournal is where berth before the escaped layout kept the pair's journal.
func (d Dir) legacyJournal(project, service string) string {
	return filepath.Join(d.journalDir(), legacyName(project+"__"+service)+".json")
}

// legacyImageList is where berth before the escaped layout kept the pair's image list.
func (d Dir) legacyImageList(kind ListKind, project, service string) string {
	return filepath.Join(d.root, string(kind), legacyName(project+"/"+service)+".json")
}

// pairName is the file name (without extension) of a project's service: both escaped, joined
// by the one character escaping never leaves.
func pairName(project, service string) string {
	return escape(project) + "+" + escape(service)
}

// escape keeps the characters compose allows in project and service names ([A-Za-z0-9_.-])
// and writes every other byte as %XX, '%' and '+' included, so that escaping is reversible
// and an escaped name never contains a '+'.
func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// legacyName is the file name berth before the escaped layout made of s: every character
// outside [A-Za-z0-9_.-] became '_'. Only reading old files uses it.
func legacyName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
			return r
		}
		return '_'
	}, s)
}

// readJSON reads the JSON file at path into v; ok is false, and v as it was, when the file is
// missing.
func readJSON(path string, v any) (ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, json.Unmarshal(b, v)
}

// writeJSON replaces the JSON file at path with v (see replaceFile), creating its folder.
func writeJSON(path string, v any) error {
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
