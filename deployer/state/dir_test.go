package state

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// unescape reverses escape, to show that escaping loses nothing.
func unescape(s string) (string, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("short escape in " + s)
		}
		n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
		if err != nil {
			return "", err
		}
		b = append(b, byte(n))
		i += 2
	}
	return string(b), nil
}

func TestEscapeIsReversible(t *testing.T) {
	for _, s := range []string{"", "web", "Web.API-1_x", "shop/web", "a+b", "100%", "%2B", "é ü\x00", "..", "-"} {
		e := escape(s)
		if back, err := unescape(e); err != nil || back != s {
			t.Errorf("unescape(escape(%q) = %q) = %q, %v", s, e, back, err)
		}
		for _, c := range []byte(e) {
			if c == '+' || c == '/' {
				t.Errorf("escape(%q) = %q keeps a %q", s, e, c)
			}
		}
	}
	if got := escape("my-project_1"); got != "my-project_1" {
		t.Errorf("a compose name is changed: %q", got)
	}
}

// TestPairsThatCollidedNoLongerDo: pairs the legacy names mapped to one file (their legacy
// names are equal, which is checked too) get files of their own, and so does every pair built
// from names full of the characters the legacy names replaced.
func TestPairsThatCollidedNoLongerDo(t *testing.T) {
	d := New(t.TempDir())
	for _, c := range []struct {
		a, b   [2]string
		legacy func(p [2]string) string
	}{
		{[2]string{"shop", "web_api"}, [2]string{"shop_web", "api"}, func(p [2]string) string { return d.legacyImageList(FailedImages, p[0], p[1]) }},
		{[2]string{"shop", "web_api"}, [2]string{"shop", "web/api"}, func(p [2]string) string { return d.legacyImageList(ReplacedImages, p[0], p[1]) }},
		{[2]string{"a_", "b"}, [2]string{"a", "_b"}, func(p [2]string) string { return d.legacyJournal(p[0], p[1]) }},
		{[2]string{"shop", "web+x"}, [2]string{"shop", "web%x"}, func(p [2]string) string { return d.legacyJournal(p[0], p[1]) }},
	} {
		if c.legacy(c.a) != c.legacy(c.b) {
			t.Fatalf("%v and %v did not collide before: %s, %s", c.a, c.b, c.legacy(c.a), c.legacy(c.b))
		}
		for kind, path := range map[string]func(p [2]string) string{
			"journal": func(p [2]string) string { return d.journal(p[0], p[1]) },
			"lock":    func(p [2]string) string { return d.lock(p[0], p[1]) },
			"images":  func(p [2]string) string { return d.imageList(ReplacedImages, p[0], p[1]) },
			"failed":  func(p [2]string) string { return d.imageList(FailedImages, p[0], p[1]) },
		} {
			if path(c.a) == path(c.b) {
				t.Errorf("%s: %v and %v share %s", kind, c.a, c.b, path(c.a))
			}
		}
	}

	parts := []string{"", "a", "_", "__", "+", "%", "%2B", "/", ".", "a_b", "a/b", "a+b"}
	seen := map[string][2]string{}
	for _, p := range parts {
		for _, s := range parts {
			name := pairName(p, s)
			if other, ok := seen[name]; ok {
				t.Errorf("%q/%q and %q/%q both map to %q", p, s, other[0], other[1], name)
			}
			seen[name] = [2]string{p, s}
		}
	}
}

// TestCollidingPairsKeepTheirOwnState: journals, locks and image lists of two pairs that
// shared files before are independent.
func TestCollidingPairsKeepTheirOwnState(t *testing.T) {
	d := New(t.TempDir())
	a, b := [2]string{"shop", "web_api"}, [2]string{"shop_web", "api"}
	for _, p := range [][2]string{a, b} {
		if err := d.NewJournal(p[0], p[1]).Write("pull"); err != nil {
			t.Fatal(err)
		}
	}
	if js, err := d.Journals(); err != nil || len(js) != 2 {
		t.Errorf("journals of two pairs: %d, %v; want 2", len(js), err)
	}
	for _, p := range [][2]string{a, b} {
		if j, err := d.Pending(p[0], p[1]); err != nil || j == nil || j.Project != p[0] || j.Service != p[1] {
			t.Errorf("Pending(%v) = %+v, %v", p, j, err)
		}
	}

	unlock, ok, err := d.TryLock(a[0], a[1])
	if err != nil || !ok {
		t.Fatalf("lock %v: %v %v", a, ok, err)
	}
	defer unlock()
	if unlockB, ok, err := New(d.root).TryLock(b[0], b[1]); err != nil || !ok {
		t.Errorf("%v's lock is held by %v's: %v %v", b, a, ok, err)
	} else {
		unlockB()
	}

	lists := NewImageLists[string](d, FailedImages)
	if err := lists.Save(a[0], a[1], []string{"sha256:a"}); err != nil {
		t.Fatal(err)
	}
	if got, err := lists.Load(b[0], b[1]); err != nil || len(got) != 0 {
		t.Errorf("%v's list = %v, %v; want none (it is %v's)", b, got, err, a)
	}
}

func TestLockBetweenProcesses(t *testing.T) {
	root := t.TempDir()
	unlock, ok, err := New(root).TryLock("shop", "web")
	if err != nil || !ok {
		t.Fatalf("first lock: %v %v", ok, err)
	}
	other := New(root) // its own open lock file, as another process has
	if _, ok, err := other.TryLock("shop", "web"); ok || err != nil {
		t.Fatalf("second TryLock: ok %v, err %v; want held", ok, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	waits := 0
	if _, err := other.Lock(ctx, "shop", "web", func() { waits++ }); !errors.Is(err, context.DeadlineExceeded) || waits != 1 {
		t.Fatalf("Lock while held: %v after %d waits; want the deadline after 1", err, waits)
	}
	unlock()
	got, err := other.Lock(context.Background(), "shop", "web", func() { t.Error("waited for a free lock") })
	if err != nil {
		t.Fatal(err)
	}
	got()

	if unlock, ok, err := New("").TryLock("shop", "web"); !ok || err != nil || unlock == nil {
		t.Errorf("without STATE_DIR: %v %v", ok, err)
	}
}

func TestImageListsInMemory(t *testing.T) {
	lists := NewImageLists[string](New(""), ReplacedImages)
	if err := lists.Save("shop", "web", []string{"x"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := lists.Load("shop", "web"); len(got) != 1 || got[0] != "x" {
		t.Errorf("Load = %v", got)
	}
	if got, _ := lists.Load("shop", "api"); len(got) != 0 {
		t.Errorf("another service's list = %v", got)
	}
}

// TestLegacyLayoutIsRead: a STATE_DIR the berth before the escaped names wrote still has its
// journals repaired and its image lists found; a new save takes over from the legacy file.
func TestLegacyLayoutIsRead(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("journal/shop__web_api.json", `{"project":"shop","service":"web_api","step":"start","committed":true,"swaps":[{"name":"shop-web_api-1","old_id":"abc"}]}`)
	write("images/shop_web_api.json", `{"images":["sha256:old"]}`)
	write("failed/shop_web_api.json", `{"images":[{"id":"sha256:bad","reason":"exit code 3"}]}`)
	d := New(root)

	js, err := d.Journals()
	if err != nil || len(js) != 1 || js[0].Project != "shop" || js[0].Service != "web_api" || !js[0].Committed || js[0].Swaps[0].OldID != "abc" {
		t.Fatalf("legacy journals = %+v, %v", js, err)
	}
	if j, err := d.Pending("shop", "web"); j != nil || err != nil {
		t.Errorf("another service's pending journal = %+v, %v", j, err)
	}
	j, err := d.Pending("shop", "web_api")
	if err != nil || j == nil || j.Step != "start" {
		t.Fatalf("the service's legacy journal: %+v, %v", j, err)
	}
	if err := j.Finish(); err != nil {
		t.Fatal(err)
	}
	if js, err := d.Journals(); len(js) != 0 || err != nil {
		t.Errorf("after Finish: %+v, %v", js, err)
	}

	replaced := NewImageLists[string](d, ReplacedImages)
	if got, err := replaced.Load("shop", "web_api"); err != nil || len(got) != 1 || got[0] != "sha256:old" {
		t.Errorf("legacy replaced-image list = %v, %v", got, err)
	}
	type failed struct {
		ID     string `json:"id"`
		Reason string `json:"reason"`
	}
	if got, err := NewImageLists[failed](d, FailedImages).Load("shop", "web_api"); err != nil || len(got) != 1 || got[0].Reason != "exit code 3" {
		t.Errorf("legacy failed-image list = %+v, %v", got, err)
	}
	if err := replaced.Save("shop", "web_api", []string{"sha256:newer"}); err != nil {
		t.Fatal(err)
	}
	if got, _ := replaced.Load("shop", "web_api"); len(got) != 1 || got[0] != "sha256:newer" {
		t.Errorf("after a save: %v; want the new file's list", got)
	}
	if _, err := os.Stat(filepath.Join(root, "images", "shop+web_api.json")); err != nil {
		t.Errorf("the new layout's file: %v", err)
	}
}
