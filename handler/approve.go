package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
)

// Approver decides an update watch mode holds for approval (berth.approve=manual).
type Approver interface {
	Approve(ctx context.Context, service string, approve bool) (digest string, err error)
}

// approveRequest is the JSON body of POST /api/approve.
type approveRequest struct {
	Service string `json:"service"` // service or project/service
	Reject  bool   `json:"reject"`  // reject instead of approve
}

// approveAnswer is the JSON answer of POST /api/approve.
type approveAnswer struct {
	Service  string `json:"service"`
	Digest   string `json:"digest"`
	Decision string `json:"decision"` // approved or rejected
}

// handleApprove is POST /api/approve: approve (or reject) the update held for a service; the
// next check deploys an approved one.
func handleApprove(a Approver, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := []any{"remote", r.RemoteAddr, "path", r.URL.Path}
		req, err := decodeApprove(r.Body)
		var digest string
		if err == nil {
			attrs = append(attrs, "service", req.Service, "reject", req.Reject)
			digest, err = a.Approve(r.Context(), req.Service, !req.Reject)
		}
		if err != nil {
			writeError(w, log, webhookRefused, err, attrs...)
			return
		}
		ans := approveAnswer{Service: req.Service, Digest: digest, Decision: "approved"}
		if req.Reject {
			ans.Decision = "rejected"
		}
		log.Info("update "+ans.Decision, append(attrs, "digest", digest)...)
		writeJSON(w, http.StatusOK, ans)
	})
}

func decodeApprove(body io.Reader) (approveRequest, error) {
	var req approveRequest
	raw, err := io.ReadAll(io.LimitReader(body, 1<<16))
	if err != nil {
		return req, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest(`the body is not {"service": "project/service"} (add "reject": true to reject): %v`, err)
	}
	if dec.More() {
		return req, badRequest("the body has data after its JSON object")
	}
	if req.Service == "" {
		return req, badRequest(`"service" is missing: name the service whose update to approve, as service or project/service`)
	}
	return req, nil
}
