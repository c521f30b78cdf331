package handler

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestResentOlderGHCRDeliveryIsSkipped: GitHub re-sends an old package event with a new
// delivery id after a newer push was deployed. The duplicate check cannot tell (the id is new),
// so the deployer must: the newer image keeps running and the record says why the old push
// was skipped. Real GHCR payloads, the real engine and registry (GHCR_HOST names the sandbox's).
func TestResentOlderGHCRDeliveryIsSkipped(t *testing.T) {
	eng := deployertest.Engine(t)
	reg := deployertest.Registry()
	tag := deployertest.UniqueTag("resent")
	repo := "acme/resent"
	deployertest.PushHTTPImage(t, eng, repo, tag, "version 1")
	d1 := deployertest.ManifestDigest(t, reg, repo, tag)
	name := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, name, fmt.Sprintf("services:\n  web:\n    image: %s/%s:%s\n    init: true\n", reg, repo, tag))
	deployertest.ComposeUp(t, deployertest.ComposeCLI(t, "v5.6.0"), dir)
	deployertest.PushHTTPImage(t, eng, repo, tag, "version 2")
	d2 := deployertest.ManifestDigest(t, reg, repo, tag)

	var mu sync.Mutex
	var recs []deployer.Record
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := deployer.New(ctx, eng, deployer.Options{Owners: []string{"acme"}, Projects: []compose.Spec{{Dir: dir}}, Backend: deployer.BackendCompose,
		StateDir: t.TempDir(), HealthSettle: time.Second, OnRecord: func(r deployer.Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() }})
	cfg := fullConfig()
	cfg.GHCRHost = reg
	srv := NewServer(cfg, d, slog.New(slog.DiscardHandler))

	t1, t2 := "2026-11-20T14:03:28Z", "2026-11-20T15:10:00Z"
	steps := []struct {
		what, digest, pushedAt, delivery string
		outcome, errHas                  string
		runs                             string // the digest the service must run afterwards
	}{
		{"v1's delivery", d1, t1, "7b0c2e9a-0001", deployer.OutcomeUpToDate, "", d1},
		{"v2's delivery", d2, t2, "7b0c2e9a-0002", deployer.OutcomeDeployed, "", d2},
		{"v1's delivery re-sent with a new id", d1, t1, "7b0c2e9a-0003", deployer.OutcomeSkipped, "older than the one web last deployed", d2},
		{"v2's delivery re-sent with a new id", d2, t2, "7b0c2e9a-0004", deployer.OutcomeUpToDate, "", d2},
	}
	for i, st := range steps {
		body := resentGHCRPayload(t, reg+"/"+repo, tag, st.digest, st.pushedAt)
		h := with(fixtureHeaders(t, "ghcr-package-published.headers.txt"), "X-GitHub-Delivery", st.delivery,
			"X-Hub-Signature-256", "sha256="+hmacHex(fixtureSecret, body), "X-Hub-Signature", "")
		if status, out := send(t, srv, call{"", h, body}); status != http.StatusAccepted {
			t.Fatalf("%s: %d %v, want 202", st.what, status, out)
		}
		if err := d.Wait(ctx); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		got := recs
		mu.Unlock()
		if len(got) != i+1 {
			t.Fatalf("%s: %d records, want %d", st.what, len(got), i+1)
		}
		r := got[i]
		if r.Outcome != st.outcome || !strings.Contains(r.Error, st.errHas) || st.errHas == "" && r.Error != "" {
			t.Errorf("%s: outcome %s (%s), want %s with %q", st.what, r.Outcome, r.Error, st.outcome, st.errHas)
		}
		if got := runningDigest(t, eng, name, reg+"/"+repo); got != st.runs {
			t.Errorf("after %s the service runs %s, want %s", st.what, got, st.runs)
		}
	}
}

// resentGHCRPayload is the real GHCR package event with the image, tag, digest and push time replaced.
func resentGHCRPayload(t *testing.T, repo, tag, digest, pushedAt string) []byte {
	t.Helper()
	const fixtureDigest = "sha256:deadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeefdeadbeef"
	body := string(fixture(t, "ghcr-package-published.json"))
	for _, must := range []string{fixtureDigest, `"package_url": "ghcr.io/acme/web:1.4.2"`, `"name": "1.4.2"`, `"updated_at": "2026-11-20T14:03:28Z"`} {
		if !strings.Contains(body, must) {
			t.Fatalf("fixture lacks %s", must)
		}
	}
	return []byte(strings.NewReplacer(fixtureDigest, digest,
		`"package_url": "ghcr.io/acme/web:1.4.2"`, `"package_url": "`+repo+":"+tag+`"`,
		`"name": "1.4.2"`, `"name": "`+tag+`"`,
		`"updated_at": "2026-11-20T14:03:28Z"`, `"updated_at": "`+pushedAt+`"`).Replace(body))
}

// runningDigest is the repository digest of the image project's web container runs.
func runningDigest(t *testing.T, eng *client.Client, project, repo string) string {
	t.Helper()
	ctx := context.Background()
	list, err := eng.ContainerList(ctx, client.ContainerListOptions{Filters: make(client.Filters).
		Add("label", "com.docker.compose.project="+project).Add("label", "com.docker.compose.service=web")})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("web's containers: %v %v", list.Items, err)
	}
	img, err := eng.ImageInspect(ctx, list.Items[0].ImageID)
	if err != nil {
		t.Fatal(err)
	}
	for _, rd := range img.RepoDigests {
		if r, d, ok := strings.Cut(rd, "@"); ok && r == repo {
			return d
		}
	}
	t.Fatalf("image %s has no digest of %s: %v", list.Items[0].ImageID, repo, img.RepoDigests)
	return ""
}
