package command

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/moby/moby/client"
)

// TestNegotiateAPI: berth settles on an API version both sides speak, and says what to upgrade
// when there is none. The engines are stand-ins on loopback: no real engine can be made to
// speak an API newer or older than berth's on demand.
func TestNegotiateAPI(t *testing.T) {
	for _, tc := range []struct {
		name, max, min string
		refuse         bool   // the engine refuses berth's version with a 400, as Engine 29.0 did below 1.44
		want           string // "" for success, else part of the error
		negotiated     string
	}{
		{name: "older engine", max: "1.41", min: "1.12", negotiated: "1.41"},
		{name: "same", max: client.MaxAPIVersion, min: "1.40", negotiated: client.MaxAPIVersion},
		{name: "newer engine still accepting", max: "1.60", min: "1.44", negotiated: client.MaxAPIVersion},
		{name: "newer engine refusing", max: "1.70", min: "1.60", refuse: true, want: "upgrade berth"},
		{name: "newer engine reporting its minimum", max: "1.70", min: "1.60", want: "its minimum is 1.60"},
		{name: "engine too old", max: "1.30", min: "1.12", want: "upgrade the engine"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Api-Version", tc.max)
				switch {
				case r.URL.Path == "/_ping":
					fmt.Fprint(w, "OK")
				case strings.HasSuffix(r.URL.Path, "/version") && tc.refuse:
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusBadRequest)
					fmt.Fprintf(w, `{"message":"client version %s is too old. Minimum supported API version is %s"}`, client.MaxAPIVersion, tc.min)
				case strings.HasSuffix(r.URL.Path, "/version"):
					w.Header().Set("Content-Type", "application/json")
					fmt.Fprintf(w, `{"ApiVersion":%q,"MinAPIVersion":%q}`, tc.max, tc.min)
				default:
					http.NotFound(w, r)
				}
			}))
			defer srv.Close()
			docker, err := client.New(client.WithHost("tcp://" + srv.Listener.Addr().String()))
			if err != nil {
				t.Fatal(err)
			}
			defer docker.Close()
			err = negotiateAPI(context.Background(), docker)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("negotiateAPI: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("negotiateAPI: %v, want an error saying %q", err, tc.want)
			case tc.want == "" && docker.ClientVersion() != tc.negotiated:
				t.Errorf("negotiated %s, want %s", docker.ClientVersion(), tc.negotiated)
			}
		})
	}
}

// TestNegotiateAPIEngineDown: an engine that does not answer is left to the engine calls.
func TestNegotiateAPIEngineDown(t *testing.T) {
	docker, err := client.New(client.WithHost("unix://" + t.TempDir() + "/none.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer docker.Close()
	if err := negotiateAPI(context.Background(), docker); err != nil {
		t.Errorf("with no engine: %v, want nil", err)
	}
}
