package main

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestImageInspectAPI asks a running berth about the image a compose service runs: the
// registry's summary comes back beside the service's container, behind the read token.
func TestImageInspectAPI(t *testing.T) {
	t.Parallel()
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("api")
	ref := deployertest.Registry() + "/acme/web:" + tag
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "inspected", `LABEL org.opencontainers.image.version=7.0.1`)
	project := strings.ReplaceAll(tag, "-", "")
	dir := deployertest.WriteProject(t, project, "name: "+project+"\nservices:\n  web:\n    image: "+ref+"\n    init: true\n")
	deployertest.ComposeUp(t, cli, dir)

	const token = "read-token-0123456789"
	url, _ := startBerth(t, map[string]string{"PROJECT_DIR": dir, "API_TOKEN": token})
	get := func(query, bearer string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, url+"/api/images/inspect"+query, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		query, bearer string
		status        int
		says          string
	}{
		{"?ref=" + ref, "", http.StatusUnauthorized, "unauthorized"},
		{"?ref=" + ref, "wrong-token-0123456789", http.StatusUnauthorized, "unauthorized"},
		{"", token, http.StatusBadRequest, "ref is missing"},
		{"?ref=" + deployertest.Registry() + "/acme/web:no-such-tag-x", token, http.StatusNotFound, "has no image"},
	} {
		if status, body := get(tc.query, tc.bearer); status != tc.status || !strings.Contains(body, tc.says) {
			t.Errorf("GET %s (token %q): %d %s, want %d saying %q", tc.query, tc.bearer, status, body, tc.status, tc.says)
		}
	}
	status, body := get("?ref="+ref, token)
	if status != http.StatusOK {
		t.Fatalf("inspect: %d %s", status, body)
	}
	var rep deployer.ImageReport
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	img, err := eng.ImageInspect(t.Context(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Image.IsLocalID(img.ID) || rep.Image.Labels[deployer.LabelOCIVersion] != "7.0.1" || len(rep.Image.History) == 0 {
		t.Errorf("image %+v, engine image %s", rep.Image, img.ID)
	}
	if len(rep.Containers) != 1 || rep.Containers[0].Service != "web" || rep.Containers[0].Project != project ||
		!rep.Containers[0].Current || rep.Containers[0].State != "running" {
		t.Errorf("containers beside the image: %+v", rep.Containers)
	}
}

// TestImageInspectAPIOff: without API_TOKEN the read API does not answer.
func TestImageInspectAPIOff(t *testing.T) {
	t.Parallel()
	url, _ := startBerth(t, map[string]string{"PROJECT_DIR": deployertest.WriteProject(t, "empty", "services: {}\n")})
	resp, err := http.Get(url + "/api/images/inspect?ref=acme/web:1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(string(b), "API_TOKEN") {
		t.Errorf("read API without a token: %d %s", resp.StatusCode, b)
	}
}
