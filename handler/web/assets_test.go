package web

import (
	"io/fs"
	"regexp"
	"testing"
)

// TestAssetsAreSelfContained: the embedded files and the markup html.go writes name no other
// origin and carry no inline script, style or event handler, so the page works offline under
// its strict CSP.
func TestAssetsAreSelfContained(t *testing.T) {
	forbidden := []struct {
		what string
		re   *regexp.Regexp
	}{
		{"an external URL", regexp.MustCompile(`(?i)(src|href|action|url)\s*[=(]\s*["']?\s*(https?:)?//`)},
		{"a fetched absolute URL", regexp.MustCompile(`(?i)(fetch|EventSource|import)\s*\(\s*["'](https?:)?//`)},
		{"@import", regexp.MustCompile(`(?i)@import`)},
		{"an inline script", regexp.MustCompile(`(?i)<script(\s[^>]*)?>\s*[^<\s]`)},
		{"a script without src", regexp.MustCompile(`(?i)<script(\s+(type|defer|async)(="[^"]*")?)*\s*>`)},
		{"an inline style", regexp.MustCompile(`(?i)<style|\sstyle=`)},
		{"an inline event handler", regexp.MustCompile(`(?i)\son[a-z]+\s*=`)},
		{"javascript: URL", regexp.MustCompile(`(?i)javascript:`)},
	}
	check := func(path string, b []byte) {
		for _, f := range forbidden {
			if loc := f.re.FindIndex(b); loc != nil {
				t.Errorf("%s has %s: %q", path, f.what, b[loc[0]:loc[1]])
			}
		}
	}
	n := 0
	err := fs.WalkDir(assets, "assets", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		n++
		b, err := assets.ReadFile(path)
		if err != nil {
			return err
		}
		check(path, b)
		return nil
	})
	if err != nil || n < 2 {
		t.Fatalf("walked %d embedded files: %v", n, err)
	}
	check("the page", pageHTML(typicalPage()))
	check("the login form", loginHTML("That is not berth's API token."))
}
