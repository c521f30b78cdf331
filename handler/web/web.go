// Package web is berth's status page: a server-rendered view of the services and the deploy
// history, a "deploy now" button per service, and live updates over Server-Sent Events. It
// speaks HTTP only; the token check, the abuse limits and the error answers belong to handler,
// which passes them in as Deps.
package web

import (
	"context"
	"crypto/rand"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// assets are the page's style and script, compiled into the binary (its markup is written by
// html.go): the page works offline and under a Content-Security-Policy that allows nothing but
// berth itself.
//
//go:embed assets
var assets embed.FS

// csp allows the page its own files and nothing else: no inline script or style, no other
// origin, no framing, forms posted back to berth only.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// ServiceLister reports what runs for every service berth serves.
type ServiceLister interface {
	Services(ctx context.Context) ([]deployer.ServiceStatus, error)
}

// DeployHistory returns the newest deploy records, newest first (all when n <= 0).
type DeployHistory interface {
	Records(n int) []deployer.Record
}

// ServiceDeployer redeploys one service now, as `berth deploy` does, or rolls it back to the
// image it ran before berth's last deploy.
type ServiceDeployer interface {
	DeployService(ctx context.Context, service, ref string) (deployer.Ticket, error)
	RollBackService(ctx context.Context, service string) (deployer.Ticket, error)
}

// Deps are what the page needs from berth. Token, Admit, Status and Fail come from handler,
// so the page checks the same API token, under the same abuse limits, with the same errors.
type Deps struct {
	Token func(presented string) bool // whether presented is the API token (constant time)
	Admit func(r *http.Request, authenticated bool) error
	// Stream trades an admitted event stream's request slot for a stream place, so open
	// pages never hold up webhooks; nil holds nothing.
	Stream   func(r *http.Request) (release func(), err error)
	Status   func(err error) int                                     // the HTTP status of err
	Fail     func(w http.ResponseWriter, r *http.Request, err error) // handler's one error answer
	Services ServiceLister
	History  DeployHistory
	Deployer ServiceDeployer // nil hides the deploy buttons
	Events   *Hub            // nil turns live updates off
	Log      *slog.Logger
	Now      func() time.Time // time.Now when nil
}

// UI is the status page's handler set; Register puts its routes on a mux.
type UI struct {
	deps   Deps
	keys   sessionKeys
	static http.Handler
	cop    *http.CrossOriginProtection
}

// New builds the page. Sessions are signed with a key drawn here, so a restart logs everyone
// out.
func New(deps Deps) *UI {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	var key [32]byte
	_, _ = rand.Read(key[:]) // crypto/rand never fails (it crashes the program instead)
	static, _ := fs.Sub(assets, "assets")
	return &UI{deps: deps, keys: sessionKeys{key: key[:]},
		static: http.StripPrefix("/ui/assets/", http.FileServerFS(static)), cop: http.NewCrossOriginProtection()}
}

// Register adds the page's routes: the page at /ui/ (/ redirects there), its assets, login,
// logout, the deploy and roll-back buttons and the event stream.
func (u *UI) Register(mux *http.ServeMux) {
	mux.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusSeeOther))
	mux.Handle("GET /ui", http.RedirectHandler("/ui/", http.StatusSeeOther))
	mux.Handle("GET /ui/{$}", u.secure(u.handlePage()))
	mux.Handle("GET /ui/assets/", u.secure(u.handleAsset()))
	mux.Handle("POST /ui/login", u.secure(u.handleLogin()))
	mux.Handle("POST /ui/logout", u.secure(u.handleLogout()))
	if u.deps.Deployer != nil {
		mux.Handle("POST /ui/deploy", u.secure(u.handleDeploy()))
		mux.Handle("POST /ui/rollback", u.secure(u.handleRollback()))
	}
	if u.deps.Events != nil {
		mux.Handle("GET /ui/events", u.secure(u.handleEvents()))
	}
}

// secure sets the headers every answer of the page carries.
func (u *UI) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// handleAsset serves the style and the script, and nothing else the folder may hold.
func (u *UI) handleAsset() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ui/assets/style.css", "/ui/assets/app.js":
			w.Header().Set("Cache-Control", "no-cache")
			u.static.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}
