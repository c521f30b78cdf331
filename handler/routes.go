package handler

import (
	"log/slog"
	"net/http"
)

// addRoutes is berth's whole HTTP API.
func addRoutes(mux *http.ServeMux, cfg Config, d Deployer, log *slog.Logger) {
	sources := []source{dockerHub{secret: cfg.Secret}}
	mux.Handle("POST /webhook", handleWebhook(sources, d, log))
	mux.Handle("GET /healthz", handleHealthz())
}
