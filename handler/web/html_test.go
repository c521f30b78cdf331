package web

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer"
)

var update = flag.Bool("update", false, "rewrite testdata/*.html golden files")

// typicalPage is a page with every branch of the markup taken at least once.
func typicalPage() page {
	started := time.Unix(1795183407, 0)
	records := []deployer.Record{
		{ID: "r3", Project: "shop", Service: "db", Source: "watch", Repository: "postgres", Tag: "17",
			Digest: "sha256:aabbccddeeff00112233445566778899aabbccddeeff00112233445566778899", Pusher: "ana",
			Started: started.Add(2 * time.Minute), Duration: 61234567 * time.Microsecond, Outcome: deployer.OutcomeFailed,
			Error: `pull postgres:17: manifest unknown`,
			Steps: []deployer.Step{{Name: "pull", Container: "postgres:17", Took: 1234567 * time.Microsecond, Error: "manifest unknown"}}},
		{ID: "r2", Project: "shop", Service: "web", Source: "dockerhub", Repository: "registry.test/shop/web", Tag: "1.5",
			Started: started.Add(time.Minute), Duration: 3 * time.Second, Outcome: deployer.OutcomeRolledBack, Error: "unhealthy after start",
			Steps: []deployer.Step{{Name: "pull", Took: time.Second}, {Name: "create", Container: "shop-web-1"}, {Name: "start", Container: "shop-web-1", Error: "unhealthy"}}},
		{ID: "r1", Project: "shop", Service: "web", Source: "dockerhub", Repository: "registry.test/shop/web", Tag: "1.4",
			Started: started, Duration: 1500 * time.Millisecond, Outcome: deployer.OutcomeDeployed,
			Steps: []deployer.Step{{Name: "pull", Took: time.Second}, {Name: "start", Container: "shop-web-1"}}},
	}
	services := []deployer.ServiceStatus{
		{Project: "shop", Service: "db", Image: "postgres:17", Deploys: true},
		{Project: "shop", Service: "web", Image: "registry.test/shop/web:1.4", Deploys: true,
			RepoDigest:   "registry.test/shop/web@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
			ImageLabels:  map[string]string{"org.opencontainers.image.version": "1.4.2", "org.opencontainers.image.revision": "abcdef0123456789", "org.opencontainers.image.source": "https://git.test/shop"},
			Containers:   []deployer.ContainerStatus{{Name: "shop-web-1", State: "running", Health: "healthy"}},
			FailedImages: []deployer.FailedImage{{ID: "sha256:fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210", Reason: "unhealthy"}, {ID: "sha256:0f0f", Reason: "exited 1"}},
			Previous:     "sha256:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"},
		{Project: "shop", Service: "worker", Image: "registry.test/shop/worker:2", ImageID: "sha256:9999888877776666555544443333222211110000999988887777666655554444",
			ImageLabels: map[string]string{"org.opencontainers.image.version": "2.0.0"},
			Containers:  []deployer.ContainerStatus{{State: "running", Health: "starting"}, {State: "exited"}}},
	}
	p := page{CSRF: "csrf-token-0123", CanDeploy: true, Live: true, Newest: "r3/shop/db",
		Services: rows(services, records), Filter: filter{Service: "shop/web", Outcome: deployer.OutcomeDeployed}}
	for _, s := range p.Services {
		p.Known = append(p.Known, s.Key)
	}
	p.Deploys = filter{}.apply(records, timelineLength)
	return p
}

// TestPageMatchesTheTemplate: the Go writer puts out, byte for byte, what the html/template
// version of the page put out for the same data (testdata/*.html were written by it, before
// it was removed). The data holds no '+' or NUL, the two characters html/template escaped
// and html.EscapeString does not (&#43; and U+FFFD); a browser reads both the same.
func TestPageMatchesTheTemplate(t *testing.T) {
	tests := []struct {
		golden string
		html   func() string
	}{
		{"page-typical.html", func() string { return string(pageHTML(typicalPage())) }},
		{"page-empty.html", func() string { return string(pageHTML(page{ServicesErr: "engine: connection refused"})) }},
		{"page-no-services.html", func() string {
			return string(pageHTML(page{CSRF: "c", CanDeploy: true, Live: true, Services: []serviceRow{}}))
		}},
		{"login.html", func() string { return string(loginHTML("")) }},
		{"login-message.html", func() string { return string(loginHTML("That is not berth's API token.")) }},
	}
	for _, tc := range tests {
		t.Run(tc.golden, func(t *testing.T) {
			got, path := tc.html(), filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("%s differs from the template's output:\n%s", tc.golden, firstDiff(got, string(want)))
			}
		})
	}
}

// firstDiff shows where got and want part, with a little context.
func firstDiff(got, want string) string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	from := max(0, i-80)
	return "got:  …" + got[from:min(len(got), i+80)] + "…\nwant: …" + want[from:min(len(want), i+80)] + "…"
}

// TestPageEscapesEveryValue: a value from a push, a registry, the engine or the request that
// carries markup comes out as text, in element content and in attributes alike.
func TestPageEscapesEveryValue(t *testing.T) {
	const evil = `"><script>alert(1)</script>&'`
	const escaped = `&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;&amp;&#39;`
	service := func(edit func(s *serviceRow)) func(*page) {
		return func(p *page) { edit(&p.Services[1]) } // shop/web: digest, labels, failed image, previous, last deploy
	}
	record := func(edit func(r *deployer.Record)) func(*page) {
		return func(p *page) { edit(&p.Deploys[0]) } // r3: pusher, digest, error, a failed step
	}
	tests := []struct {
		name  string
		edit  func(*page)
		shown bool // whether the value appears on the page at all (the filter's are only compared)
	}{
		{"service name", service(func(s *serviceRow) { s.Service, s.Key = evil, "shop/"+evil }), true},
		{"project", service(func(s *serviceRow) { s.Project = evil }), true},
		{"image", service(func(s *serviceRow) { s.Image = evil }), true},
		{"repo digest", service(func(s *serviceRow) { s.RepoDigest = evil }), true},
		{"image id", service(func(s *serviceRow) { s.RepoDigest, s.ImageID = "", evil }), true},
		{"version label", service(func(s *serviceRow) { s.ImageLabels = map[string]string{"org.opencontainers.image.version": evil} }), true},
		{"revision label", service(func(s *serviceRow) { s.ImageLabels = map[string]string{"org.opencontainers.image.revision": evil} }), true},
		{"source label", service(func(s *serviceRow) { s.ImageLabels = map[string]string{"org.opencontainers.image.source": evil} }), true},
		{"container state", service(func(s *serviceRow) { s.Containers = []deployer.ContainerStatus{{State: evil}} }), true},
		{"container health", service(func(s *serviceRow) { s.Containers[0].Health = evil }), true},
		{"failed image", service(func(s *serviceRow) { s.FailedImages[0].ID = evil }), true},
		{"failed reason", service(func(s *serviceRow) { s.FailedImages[0].Reason = evil }), true},
		{"previous image", service(func(s *serviceRow) { s.Previous = evil }), true},
		{"last outcome", service(func(s *serviceRow) { s.Last = &deployer.Record{Outcome: evil} }), true},
		{"deploy id", record(func(r *deployer.Record) { r.ID = evil }), true},
		{"deploy project and service", record(func(r *deployer.Record) { r.Project, r.Service = evil, evil }), true},
		{"source", record(func(r *deployer.Record) { r.Source = evil }), true},
		{"repository", record(func(r *deployer.Record) { r.Repository = evil }), true},
		{"tag", record(func(r *deployer.Record) { r.Tag = evil }), true},
		{"outcome", record(func(r *deployer.Record) { r.Outcome = evil }), true},
		{"pusher", record(func(r *deployer.Record) { r.Pusher = evil }), true},
		{"digest", record(func(r *deployer.Record) { r.Digest = evil }), true},
		{"error", record(func(r *deployer.Record) { r.Error = evil }), true},
		{"step name", record(func(r *deployer.Record) { r.Steps[0].Name = evil }), true},
		{"step container", record(func(r *deployer.Record) { r.Steps[0].Container = evil }), true},
		{"step error", record(func(r *deployer.Record) { r.Steps[0].Error = evil }), true},
		{"csrf token", func(p *page) { p.CSRF = evil }, true},
		{"newest", func(p *page) { p.Newest = evil }, true},
		{"services error", func(p *page) { p.ServicesErr = evil }, true},
		{"known service", func(p *page) { p.Known = append(p.Known, evil) }, true},
		{"filter service", func(p *page) { p.Filter.Service = evil }, false},
		{"filter outcome", func(p *page) { p.Filter.Outcome = evil }, false},
	}
	check := func(t *testing.T, out string, scripts int, shown bool) {
		t.Helper()
		if n := strings.Count(out, "<script"); n != scripts || strings.Contains(out, "alert(1)</script>") {
			t.Errorf("the value came out as markup (%d <script tags, want %d):\n%s", n, scripts, out)
		}
		if got := strings.Contains(out, escaped); got != shown {
			t.Errorf("escaped value shown: %v, want %v:\n%s", got, shown, out)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := typicalPage()
			tc.edit(&p)
			check(t, string(pageHTML(p)), 1, tc.shown) // the one <script is the page's own app.js
		})
	}
	t.Run("login message", func(t *testing.T) { check(t, string(loginHTML(evil)), 0, true) })
}
