package handler

import (
	"log/slog"
	"net/http"
)

// addRoutes is berth's whole HTTP API.
func addRoutes(mux *http.ServeMux, cfg Config, d Deployer, log *slog.Logger) {
	webhook := handleWebhook(cfg, d, log)
	if cfg.Ops.Metrics != nil {
		webhook = cfg.Ops.Metrics.countWebhooks(webhook)
	}
	mux.Handle("POST /webhook", webhook)
	mux.Handle("GET /healthz", handleHealthz())
	images, _ := d.(ImageInspector) // the real deployer is one; webhook-only test doubles are not
	mux.Handle("GET /api/images/inspect", handleImageInspect(cfg.APIToken, images, log))
	if ops := cfg.Ops; ops.APIToken != "" {
		if ops.Services != nil {
			mux.Handle("GET /api/services", requireToken(ops.APIToken, log, handleServices(ops.Services, log)))
			mux.Handle("GET /api/services/{name...}", requireToken(ops.APIToken, log, handleService(ops.Services, log)))
		}
		if ops.History != nil {
			mux.Handle("GET /api/deploys", requireToken(ops.APIToken, log, handleDeploys(ops.History, log)))
		}
	}
	if cfg.Ops.Metrics != nil && cfg.Ops.ServeMetrics {
		mux.Handle("GET /metrics", cfg.Ops.Metrics.Handler())
	}
}
