package handler

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// checkDelivery is what every parser promises for any input: a bounded number of pushes,
// each naming a repository and a tag, and a digest only when it is well formed.
func checkDelivery(t *testing.T, body []byte, dl delivery, err error) {
	t.Helper()
	if err != nil {
		if statusFor(err) != http.StatusBadRequest {
			t.Fatalf("parse error %v maps to %d, want 400", err, statusFor(err))
		}
		return
	}
	if len(dl.pushes) > len(body) {
		t.Fatalf("%d pushes from %d bytes", len(dl.pushes), len(body))
	}
	if len(dl.pushes) == 0 && dl.ignored == "" {
		t.Fatal("nothing to deploy and no reason given")
	}
	for _, p := range dl.pushes {
		if p.req.Repository == "" || p.req.Tag == "" || p.req.Source == "" {
			t.Fatalf("incomplete request %+v", p.req)
		}
		if checkDigest("digest", p.req.Digest) != nil {
			t.Fatalf("malformed digest passed through: %q", p.req.Digest)
		}
	}
}

func seed(f *testing.F, names ...string) {
	for _, n := range names {
		f.Add(fixture(f, n))
	}
	f.Add([]byte(nil))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
}

func FuzzDockerHub(f *testing.F) {
	seed(f, "dockerhub-push.json", "dockerhub-push-no-dockerfile.json", "dockerhub-push-foreign-namespace.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		dl, err := dockerHub{}.parse(httptest.NewRequest(http.MethodPost, "/webhook", nil), body)
		checkDelivery(t, body, dl, err)
	})
}

func FuzzDistribution(f *testing.F) {
	seed(f, "distribution-push.json", "distribution-push-multiarch.json", "distribution-manifest-push-v3.json")
	// A small envelope gives the mutator structure to work on quickly.
	f.Add([]byte(`{"events":[{"id":"1","action":"push","target":{"mediaType":"application/vnd.oci.image.index.v1+json",` +
		`"repository":"acme/web","tag":"1","digest":"` + digestIndex + `"},"request":{"host":"r:5000"}}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		dl, err := distribution{}.parse(httptest.NewRequest(http.MethodPost, "/webhook", nil), body)
		checkDelivery(t, body, dl, err)
	})
}

func FuzzQuay(f *testing.F) {
	seed(f, "quay-push.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		dl, err := quay{}.parse(httptest.NewRequest(http.MethodPost, "/webhook", nil), body)
		checkDelivery(t, body, dl, err)
	})
}

func FuzzHarbor(f *testing.F) {
	seed(f, "harbor-push.json", "harbor-push-cloudevents.json")
	f.Fuzz(func(t *testing.T, body []byte) {
		dl, err := harbor{}.parse(httptest.NewRequest(http.MethodPost, "/webhook", nil), body)
		checkDelivery(t, body, dl, err)
	})
}

func FuzzGHCR(f *testing.F) {
	for _, n := range []string{"ghcr-package-published", "ghcr-registry-package-published", "ghcr-package-published-untagged"} {
		f.Add(fixtureHeaders(f, n+".headers.txt").Get("X-GitHub-Event"), fixture(f, n+".json"))
	}
	f.Add("ping", []byte(`{}`))
	f.Add("package", []byte(`{"action":"published","package":{"package_type":"container","package_version":`+
		`{"package_url":"r.example/acme/web:1","container_metadata":{"tag":{"name":"1","digest":"`+digestAMD64+`"}}}}}`))
	f.Fuzz(func(t *testing.T, event string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
		r.Header.Set("X-GitHub-Event", event)
		r.Header.Set("X-GitHub-Delivery", "d")
		dl, err := ghcr{}.parse(r, body)
		checkDelivery(t, body, dl, err)
	})
}

func FuzzGitea(f *testing.F) {
	f.Add("package", "", fixture(f, "gitea-package-created.json"))
	f.Add("", "package", fixture(f, "gitea-package-created.json"))
	f.Fuzz(func(t *testing.T, giteaEvent, forgejoEvent string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
		r.Header.Set("X-Gitea-Event", giteaEvent)
		r.Header.Set("X-Forgejo-Event", forgejoEvent)
		dl, err := gitea{}.parse(r, body)
		checkDelivery(t, body, dl, err)
	})
}

// FuzzStandardWebhooks covers both the signature check (any header values) and the payload.
func FuzzStandardWebhooks(f *testing.F) {
	h := fixtureHeaders(f, "standard-webhooks.headers.txt")
	body := fixture(f, "standard-webhooks.json")
	f.Add(h.Get("Webhook-Id"), h.Get("Webhook-Timestamp"), h.Get("Webhook-Signature"), body)
	f.Add("msg", "-9223372036854775808", "v1,"+strings.Repeat("A", 44)+" v1a,x v1,", []byte(`{"type":"image.pushed","data":{}}`))
	s := standardWebhooks{keys: Secrets{fixtureKey, "whsec_not base64"}}
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/webhook", nil)
		r.Header.Set("Webhook-Id", id)
		r.Header.Set("Webhook-Timestamp", ts)
		r.Header.Set("Webhook-Signature", sig)
		if err := s.authenticate(r, body, fixtureTime); err != nil {
			if st := statusFor(err); st != http.StatusUnauthorized {
				t.Fatalf("authentication failure %v maps to %d", err, st)
			}
		}
		dl, err := s.parse(r, body)
		checkDelivery(t, body, dl, err)
	})
}

// FuzzDetect drives the whole webhook handler: any headers and body must end in a well-formed
// answer, and nothing may be deployed without the claimed kind's credential (this fuzzer holds
// the fixtures' credentials but only the fixtures carry valid signatures).
func FuzzDetect(f *testing.F) {
	type fx struct{ headers, body string }
	for _, x := range []fx{
		{"dockerhub-push.headers.txt", "dockerhub-push.json"},
		{"distribution-push.headers.txt", "distribution-push.json"},
		{"ghcr-package-published.headers.txt", "ghcr-package-published.json"},
		{"gitea-package-created.headers.txt", "gitea-package-created.json"},
		{"harbor-push.headers.txt", "harbor-push.json"},
		{"harbor-push.headers.txt", "harbor-push-cloudevents.json"},
		{"quay-push.headers.txt", "quay-push.json"},
		{"standard-webhooks.headers.txt", "standard-webhooks.json"},
	} {
		h := fixtureHeaders(f, x.headers)
		f.Add(h.Get("Content-Type"), h.Get("X-GitHub-Event"), h.Get("X-Gitea-Event"), h.Get("Webhook-Id"), h.Get("Authorization"), fixture(f, x.body))
	}
	f.Fuzz(func(t *testing.T, contentType, ghEvent, giteaEvent, webhookID, auth string, body []byte) {
		d := &recordingDeployer{}
		cfg := fullConfig()
		h := NewServer(cfg, d, slog.New(slog.DiscardHandler))
		r := httptest.NewRequest(http.MethodPost, "/webhook?secret="+dockerHubURL, strings.NewReader(string(body)))
		for k, v := range map[string]string{"Content-Type": contentType, "X-GitHub-Event": ghEvent,
			"X-Gitea-Event": giteaEvent, "Webhook-Id": webhookID, "Authorization": auth} {
			if v != "" && !strings.ContainsAny(v, "\r\n") {
				r.Header.Set(k, v)
			}
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		switch w.Code {
		case 200, 202, 400, 401, 413:
		case 403: // an authenticated sender naming an image off its own registry
		default:
			t.Fatalf("status %d: %s", w.Code, w.Body)
		}
		if w.Code == 202 && len(d.requests()) == 0 {
			t.Fatal("202 without a deploy request")
		}
		if r.Header.Get("X-GitHub-Event") != "" && r.Header.Get("X-Gitea-Event") == "" && len(d.requests()) > 0 {
			t.Fatal("a GitHub-claimed delivery without a signature deployed")
		}
	})
}
