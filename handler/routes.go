package handler

import (
	"log/slog"
	"net/http"
)

// addRoutes is berth's whole HTTP API.
func addRoutes(mux *http.ServeMux, cfg Config, d Deployer, log *slog.Logger) {
	mux.Handle("POST /webhook", handleWebhook(cfg, d, log))
	mux.Handle("GET /healthz", handleHealthz())
}
