package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"

	"github.com/berth-dev/berth/deployer"
)

// ServiceDeployer redeploys one service now, through the same queue, checks and records as a
// push (deployer.DeployService, what `berth deploy` calls).
type ServiceDeployer interface {
	DeployService(ctx context.Context, service, ref string) (deployer.Ticket, error)
}

// deployNowRequest is the JSON body of POST /api/deploy.
type deployNowRequest struct {
	Service string `json:"service"` // service or project/service
	Image   string `json:"image"`   // repository:tag[@digest]; "" is the service's own
}

// deployNowAnswer is the JSON answer of POST /api/deploy.
type deployNowAnswer struct {
	Status string `json:"status"` // "queued"
	deployer.Ticket
}

// handleDeployNow is POST /api/deploy, for CI: deploy one service now, with its own image or
// the one given. It answers 202 with the ticket once the deploy is queued.
func handleDeployNow(d ServiceDeployer, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := []any{"remote", r.RemoteAddr, "path", r.URL.Path}
		req, err := decodeDeployNow(r.Body)
		var t deployer.Ticket
		if err == nil {
			attrs = append(attrs, "service", req.Service, "image", req.Image)
			t, err = d.DeployService(r.Context(), req.Service, req.Image)
		}
		if err != nil {
			writeError(w, log, webhookRefused, err, attrs...)
			return
		}
		log.Info("deploy requested", append(attrs, "deploy", t.ID, "services", t.Services)...)
		writeJSON(w, http.StatusAccepted, deployNowAnswer{Status: "queued", Ticket: t})
	})
}

// decodeDeployNow reads one deployNowRequest and refuses anything else: unknown fields (a
// typo would otherwise deploy the wrong image silently), trailing data, no service.
func decodeDeployNow(body io.Reader) (deployNowRequest, error) {
	var req deployNowRequest
	raw, err := io.ReadAll(body)
	if err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest(`the body is not {"service": "project/service", "image": "repository:tag"}: %v`, err)
	}
	if dec.More() {
		return req, badRequest("the body has data after its JSON object")
	}
	if req.Service == "" {
		return req, badRequest(`"service" is missing: name the service to deploy, as service or project/service`)
	}
	return req, nil
}
