package handler

import (
	"log/slog"
	"net/http"
)

// addRoutes is berth's whole HTTP API.
func addRoutes(mux *http.ServeMux, cfg Config, d Deployer, log *slog.Logger) {
	mux.Handle("POST /webhook", handleWebhook(cfg, d, log))
	mux.Handle("GET /healthz", handleHealthz())
	images, _ := d.(ImageInspector) // the real deployer is one; webhook-only test doubles are not
	mux.Handle("GET /api/images/inspect", handleImageInspect(cfg.APIToken, images, log))
}
