package deployer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/filestamp"
)

// indexDeployer is a Deployer serving the configured project in dir, with no engine: the
// compose backend matches without one.
func indexDeployer(t testing.TB, dir string) *Deployer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return New(ctx, nil, Options{Projects: []compose.Spec{{Dir: dir}}, Owners: []string{"acme"}, Backend: BackendCompose})
}

func writeCompose(t testing.TB, dir, yaml string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
}

func plan(t *testing.T, d *Deployer, image string) ([]string, error) {
	t.Helper()
	repo, tag, _ := strings.Cut(image, ":")
	tk, err := d.Plan(context.Background(), Request{Repository: repo, Tag: tag})
	return tk.Services, err
}

// The next push after an edit on disk routes by the edited files, with no delay: each push
// checks the indexed files (a stat each; same-size rewrites within a timestamp tick by
// content), so there is no stale routing and no stale 503 or success.
func TestIndexSeesEditsAtTheNextPush(t *testing.T) {
	dir := t.TempDir()
	writeCompose(t, dir, "name: idx\nservices:\n  web:\n    image: acme/web:1\n")
	d := indexDeployer(t, dir)
	steps := []struct {
		name, yaml, env string // yaml "" keeps the file; env non-empty rewrites .env
		push            string
		want            []string
		unavailable     bool
	}{
		{name: "first push builds the index", push: "acme/web:1", want: []string{"idx/web"}},
		{name: "image edited (same size)", yaml: "name: idx\nservices:\n  web:\n    image: acme/web:2\n", push: "acme/web:2", want: []string{"idx/web"}},
		{name: "the old image no longer routes", push: "acme/web:1", want: []string{}},
		{name: "service added", yaml: "name: idx\nservices:\n  web:\n    image: acme/web:2\n  worker:\n    image: acme/web:2\n", push: "acme/web:2", want: []string{"idx/web", "idx/worker"}},
		{name: "service removed", yaml: "name: idx\nservices:\n  worker:\n    image: acme/web:2\n", push: "acme/web:2", want: []string{"idx/worker"}},
		{name: "image from .env", yaml: "name: idx\nservices:\n  worker:\n    image: acme/web:${TAG}\n", env: "TAG=3\n", push: "acme/web:3", want: []string{"idx/worker"}},
		{name: ".env edited", env: "TAG=4\n", push: "acme/web:4", want: []string{"idx/worker"}},
		{name: "broken: 503", yaml: "name: idx\nservices:\n  worker: [\n", push: "acme/web:4", unavailable: true},
		{name: "still broken: 503 again", push: "acme/web:4", unavailable: true},
		{name: "fixed", yaml: "name: idx\nservices:\n  worker:\n    image: acme/web:5\n", push: "acme/web:5", want: []string{"idx/worker"}},
	}
	for _, s := range steps {
		if s.yaml != "" {
			writeCompose(t, dir, s.yaml)
		}
		if s.env != "" {
			if err := os.WriteFile(filepath.Join(dir, ".env"), []byte(s.env), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		got, err := plan(t, d, s.push)
		switch {
		case s.unavailable:
			if fault.KindOf(err) != fault.Unavailable || !strings.Contains(err.Error(), "does not load") {
				t.Errorf("%s: push %s: err %v, want the 503 naming the project that does not load", s.name, s.push, err)
			}
		case err != nil:
			t.Errorf("%s: push %s: %v", s.name, s.push, err)
		case !slices.Equal(got, s.want):
			t.Errorf("%s: push %s routes to %v, want %v", s.name, s.push, got, s.want)
		}
	}
}

// A deploy reuses the project the index loaded while its files are unchanged (a copy of it),
// and loads anew once they changed.
func TestDeployReusesTheIndexedProject(t *testing.T) {
	dir := t.TempDir()
	writeCompose(t, dir, "name: reuse\nservices:\n  web:\n    image: acme/web:1\n")
	d := indexDeployer(t, dir)
	if _, err := plan(t, d, "acme/web:1"); err != nil {
		t.Fatal(err)
	}
	spec := compose.Spec{Dir: dir}
	p, ok := d.indexedProjectFor(spec)
	if !ok || p.Services["web"].Image != "acme/web:1" {
		t.Fatalf("no indexed project to reuse (ok %v)", ok)
	}
	p.Services["web"] = p.Services["worker"] // the deploy's copy is its own
	if again, _ := d.indexedProjectFor(spec); again.Services["web"].Image != "acme/web:1" {
		t.Error("changing the deploy's copy changed the index")
	}
	writeCompose(t, dir, "name: reuse\nservices:\n  web:\n    image: acme/web:2\n")
	if _, ok := d.indexedProjectFor(spec); ok {
		t.Error("the indexed project was offered after its files changed")
	}
	tg, err := d.loadTarget(context.Background(), job{project: spec, service: "web"})
	if err != nil || tg.s.Image != "acme/web:2" {
		t.Errorf("deploy after the edit loads image %q (err %v), want acme/web:2", tg.s.Image, err)
	}
}

// BenchmarkMatch is the deployer's share of a 202: matching a push against an indexed project
// (go test -run '^$' -bench Match ./deployer).
func BenchmarkMatch(b *testing.B) {
	dir := b.TempDir()
	writeCompose(b, dir, "name: bench\nservices:\n  web:\n    image: acme/web:1\n  db:\n    image: acme/db:1\n")
	d := indexDeployer(b, dir)
	ctx := context.Background()
	req := Request{Repository: "acme/web", Tag: "1"}
	// Steady state: files written just now are compared by content until they settle.
	time.Sleep(filestamp.RacyWindow + 100*time.Millisecond)
	if _, err := d.Plan(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	before := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.Plan(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	// The process's CPU time per push: on a loaded machine ns/op is mostly waiting.
	b.ReportMetric(float64(cpuTime(b)-before)/float64(b.N), "cpu-ns/op")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
