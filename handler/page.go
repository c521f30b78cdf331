package handler

import (
	"log/slog"
	"net/http"

	"github.com/berth-dev/berth/handler/web"
)

// pageRefused is the log message of a refused status page request.
const pageRefused = "status page request refused"

// newPage builds the status page (web) on the API token, the abuse limits and the one error
// answer of this package.
func newPage(tokens Secrets, ops Ops, log *slog.Logger) *web.UI {
	deps := web.Deps{
		Token: tokens.Equal,
		Admit: func(r *http.Request, authenticated bool) error {
			var err error
			if !authenticated {
				err = errUnauthorized
			}
			return admit(r, err)
		},
		Stream: holdStream,
		Status: statusFor,
		Fail: func(w http.ResponseWriter, r *http.Request, err error) {
			writeError(w, log, pageRefused, err, "remote", r.RemoteAddr, "path", r.URL.Path)
		},
		Services: ops.Services, // a nil one stays nil: the page leaves out what berth was not given
		History:  ops.History,
		Deployer: ops.Deployer,
		Events:   ops.Events,
		Log:      log,
	}
	return web.New(deps)
}
