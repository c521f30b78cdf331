package deployer

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// indexDelay bounds how long the index takes to follow the engine: the event, the debounce
// (eventDebounce) and a discovery; the bound is generous for a loaded machine.
const indexDelay = 15 * time.Second

// The index follows the engine: a project that appears through discovery (started by the
// compose CLI after the index was built) is served by the next pushes, and a container
// recreated by hand with other compose files (`docker compose -f … -f … up -d`) moves the
// routing to what those files say. Neither changes a file the index knew, so only the engine's
// events (or a push that matched nothing, which looks again) can tell it.
func TestIndexFollowsTheEngine(t *testing.T) {
	eng := deployertest.Engine(t)
	bin := deployertest.ComposeCLI(t, "v5.6.0")
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	name := deployertest.UniqueTag("idx")
	repo := "acme/" + name
	for _, tag := range []string{"1", "2"} {
		if _, err := eng.ImageTag(ctx, client.ImageTagOptions{Source: "busybox:1", Target: repo + ":" + tag}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = eng.ImageRemove(context.Background(), repo+":"+tag, client.ImageRemoveOptions{}) })
	}
	d := New(ctx, eng, Options{Discover: true, Filter: ProjectFilter{Allow: []string{name}}, Owners: []string{"acme"}, Backend: BackendCompose})
	routes := func(tag string) []string {
		tk, err := d.Plan(ctx, Request{Repository: repo, Tag: tag})
		if err != nil {
			t.Fatal(err)
		}
		return tk.Services
	}
	if got := routes("1"); len(got) != 0 {
		t.Fatalf("before the project exists a push routes to %v", got)
	}
	want := []string{name + "/web"}

	dir := deployertest.WriteProject(t, name, "services:\n  web:\n    image: "+repo+":1\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n")
	deployertest.ComposeUp(t, bin, dir)
	deployertest.Eventually(t, "a push to route to the project compose just started", indexDelay, func() bool {
		return slices.Equal(routes("1"), want)
	})

	override := "services:\n  web:\n    image: " + repo + ":2\n"
	if err := os.WriteFile(filepath.Join(dir, "compose.two.yaml"), []byte(override), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := routes("1"); !slices.Equal(got, want) {
		t.Fatalf("a file compose was not told about changed the routing to %v", got)
	}
	deployertest.Compose(t, bin, dir, "-f", "compose.yaml", "-f", "compose.two.yaml", "up", "-d", "--quiet-pull")
	// No push until the index has caught up by itself, from the engine's events.
	deployertest.Eventually(t, "the index to follow the recreated container without a push", indexDelay, func() bool {
		d.index.mu.Lock()
		defer d.index.mu.Unlock()
		return len(d.index.snap.routes["docker.io/"+repo+":2"]) == 1 && len(d.index.snap.routes["docker.io/"+repo+":1"]) == 0
	})
	deployertest.Eventually(t, "the push of the image the recreated container runs to route to it, and the old one not", indexDelay, func() bool {
		return slices.Equal(routes("2"), want) && len(routes("1")) == 0
	})
}
