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
	mux.Handle("GET /api/images/inspect", handleImageInspect(cfg.APIToken, cfg.Ops.Images, log))
	if ops := cfg.Ops; ops.APIToken != "" {
		token := Secrets{ops.APIToken}
		if ops.Services != nil {
			mux.Handle("GET /api/services", requireToken(token, log, handleServices(ops.Services, log)))
			mux.Handle("GET /api/services/{name...}", requireToken(token, log, handleService(ops.Services, log)))
		}
		if ops.Approver != nil {
			mux.Handle("POST /api/approve", requireToken(token, log, handleApprove(ops.Approver, log)))
		}
		if ops.History != nil {
			mux.Handle("GET /api/deploys", requireToken(token, log, handleDeploys(ops.History, log)))
		}
		newPage(token, ops, log).Register(mux)
	}
	if ops := cfg.Ops; ops.Deployer != nil && (len(ops.DeployToken) > 0 || ops.APIToken != "") {
		access := deployAccess{deployTokens: ops.DeployToken, scope: ops.DeployServices, apiCanDeploy: ops.APITokenCanDeploy}
		if ops.APIToken != "" {
			access.apiToken = Secrets{ops.APIToken}
		}
		mux.Handle("POST /api/deploy", handleDeployNow(access, ops.Deployer, d, ops.Services, log))
	}
	if cfg.Ops.Metrics != nil && cfg.Ops.ServeMetrics {
		mux.Handle("GET /metrics", cfg.Ops.Metrics.Handler())
	}
}
