package handler

import (
	"log/slog"
	"net/http"
	"strings"
)

// checkToken is berth's one API-token check: it admits a request that presents one of tokens
// as "Authorization: Bearer <token>", compared in constant time (Secrets.Equal), and tells
// the abuse limits how the check came out.
func checkToken(tokens Secrets, r *http.Request) error {
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	var err error
	if !ok || !tokens.Equal(presented) {
		err = errUnauthorized
	}
	return admit(r, err)
}

// requireToken lets through to next the requests checkToken admits.
func requireToken(tokens Secrets, log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := checkToken(tokens, r); err != nil {
			writeError(w, log, webhookRefused, err, "remote", r.RemoteAddr, "path", r.URL.Path)
			return
		}
		next.ServeHTTP(w, r)
	})
}
