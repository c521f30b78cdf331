package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestDiscoveryServesEveryProject starts berth with no project configured next to four
// projects made by the compose CLI in four directories, all running the pushed image: the two
// allowed, readable ones are redeployed by one push, the one outside PROJECTS is untouched, and
// the one whose files berth cannot see is reported at start with the mount to add.
func TestDiscoveryServesEveryProject(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag := deployertest.UniqueTag("disc")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	suffix := strings.ReplaceAll(tag, "-", "")
	web := fmt.Sprintf(`    image: acme/web:%s
    init: true
    ports: ["127.0.0.1::80"]
`, tag)
	up := func(name, yaml string, args ...string) string {
		dir := deployertest.WriteProject(t, name, yaml)
		deployertest.Compose(t, compose, dir, append(args, "up", "-d", "--quiet-pull")...)
		t.Cleanup(func() { deployertest.Compose(t, compose, dir, append(args, "down", "-v", "-t", "1")...) })
		return dir
	}
	shop, blog, other, gone := "shop"+suffix, "blog"+suffix, "other"+suffix, "gone"+suffix
	// shop was started with --profile admin, which compose records nowhere; debug's profile is off.
	up(shop, "services:\n  web:\n"+web+"  worker:\n    image: busybox:1\n    init: true\n    command: [sleep, '3600']\n"+
		"  admin:\n    profiles: [admin]\n"+web+"  debug:\n    profiles: [debug]\n"+web, "--profile", "admin")
	// blog is made from two compose files, as its config_files label will say.
	blogDir := filepath.Join(t.TempDir(), blog)
	if err := os.MkdirAll(blogDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, yaml := range map[string]string{
		"base.yaml":     "services:\n  site:\n" + web,
		"override.yaml": "services:\n  site:\n    environment: {FLAVOUR: blog}\n",
	} {
		if err := os.WriteFile(filepath.Join(blogDir, name), []byte(yaml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	blogArgs := []string{"-f", "base.yaml", "-f", "override.yaml"}
	deployertest.Compose(t, compose, blogDir, append(blogArgs, "up", "-d", "--quiet-pull")...)
	t.Cleanup(func() { deployertest.Compose(t, compose, blogDir, append(blogArgs, "down", "-v", "-t", "1")...) })
	up(other, "services:\n  web:\n"+web)
	goneDir := up(gone, "services:\n  web:\n"+web)
	// berth cannot see gone's files (as when they are not mounted into its container); they
	// come back before the cleanup's compose down, which runs after this one.
	hidden := filepath.Join(goneDir, "compose.yaml")
	if err := os.Rename(hidden, hidden+".away"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Rename(hidden+".away", hidden) })

	ids := map[string]string{}
	for _, name := range []string{shop + "-web-1", shop + "-worker-1", shop + "-admin-1", blog + "-site-1", other + "-web-1", gone + "-web-1"} {
		id, _, err := servicePort(ctx, eng, name)
		if err != nil && !strings.Contains(name, "worker") {
			t.Fatal(err)
		}
		ids[name] = id
	}

	url, logs := startBerth(t, map[string]string{"PROJECTS": strings.Join([]string{shop, blog, gone}, ",")})
	deployertest.Eventually(t, "the discovered projects to be logged", 10*time.Second, func() bool {
		return strings.Contains(logs.String(), "project="+gone)
	})
	for _, want := range []string{
		`msg="project discovered" project=` + shop,
		`msg="project discovered" project=` + blog,
		`msg="project discovered, not allowed by PROJECTS/SKIP_PROJECTS" project=` + other,
		`msg="project discovered but berth cannot read its files; add the mount to berth's container" project=` + gone,
		"mount=" + goneDir + ":" + goneDir + ":ro",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("berth's start log does not say %q:\n%s", want, logs.String())
		}
	}

	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2")
	status, body := post(t, url+"/webhook?secret="+testSecret, dockerHubPayload(t, tag))
	if status != http.StatusAccepted || !strings.Contains(body, shop+"/web") || !strings.Contains(body, shop+"/admin") ||
		!strings.Contains(body, blog+"/site") || strings.Contains(body, other) || strings.Contains(body, gone) || strings.Contains(body, "debug") {
		t.Fatalf("webhook answered %d %s, want 202 naming %s/web, %s/admin and %s/site only", status, body, shop, shop, blog)
	}
	for _, name := range []string{shop + "-web-1", shop + "-admin-1", blog + "-site-1"} {
		deployertest.Eventually(t, name+" to answer version 2", 60*time.Second, func() bool {
			_, port, err := servicePort(ctx, eng, name)
			if err != nil || port == "" {
				return false
			}
			got, _ := deployertest.Get("http://127.0.0.1:" + port + "/")
			return got == "version 2"
		})
	}
	for name, before := range ids {
		res, err := eng.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		redeployed := name == shop+"-web-1" || name == shop+"-admin-1" || name == blog+"-site-1"
		if changed := res.Container.ID != before; changed != redeployed {
			t.Errorf("%s recreated = %v, want %v", name, changed, redeployed)
		}
	}
	if _, err := eng.ContainerInspect(ctx, shop+"-debug-1", client.ContainerInspectOptions{}); err == nil {
		t.Error("the inactive debug profile's service was created")
	}
	// Each project loaded from its own files: compose, run as the user would, changes nothing.
	if out := deployertest.Compose(t, compose, blogDir, append(blogArgs, "up", "-d")...); strings.Contains(out, "Recreate") {
		t.Errorf("docker compose up -d on blog after berth recreated something:\n%s", out)
	}
}

// TestUnloadableProjectAnswers5xx breaks a project's compose file after compose started it. A
// push of the image its files name is answered 503 naming the project and the load error (the
// sender retries), with discovery and with PROJECT_DIR alike, not "no service runs it"; with
// discovery, a push of an image the broken files never name is answered as usual.
func TestUnloadableProjectAnswers5xx(t *testing.T) {
	eng := deployertest.Engine(t)
	compose := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("broken")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	name := "broken" + strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, name, fmt.Sprintf("services:\n  web:\n    image: acme/web:%s\n    init: true\n", tag))
	deployertest.ComposeUp(t, compose, dir)
	// PROJECT_DIR's berth starts while the project loads (a broken one stops it at start).
	configured, _ := startBerth(t, map[string]string{"PROJECT_DIR": dir})
	discovered, _ := startBerth(t, map[string]string{"PROJECTS": name})
	file := filepath.Join(dir, "compose.yaml")
	good, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, append(good, "  bad: [\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.WriteFile(file, good, 0o644) }) // for compose down

	for _, tc := range []struct {
		name, url, repo string
		status          int
		want            string
	}{
		{"discovered, names the image", discovered, "acme/web", http.StatusServiceUnavailable, name},
		{"discovered, never names it", discovered, "acme/other", http.StatusOK, "no service"},
		{"PROJECT_DIR", configured, "acme/web", http.StatusServiceUnavailable, name},
	} {
		payload := strings.ReplaceAll(dockerHubPayload(t, tag), "acme/web", tc.repo)
		status, body := post(t, tc.url+"/webhook?secret="+testSecret, payload)
		if status != tc.status || !strings.Contains(body, tc.want) || status != http.StatusOK && !strings.Contains(body, "does not load") {
			t.Errorf("%s: webhook answered %d %s, want %d with %q", tc.name, status, body, tc.status, tc.want)
		}
	}
}
