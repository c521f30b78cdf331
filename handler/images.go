package handler

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
)

// ImageInspector is what the image inspection route needs: a registry summary of a reference,
// beside the service containers that run it.
type ImageInspector interface {
	InspectImage(ctx context.Context, ref string) (deployer.ImageReport, error)
}

// inspectTimeout bounds one inspection: a registry that does not answer is reported, not waited on.
const inspectTimeout = 30 * time.Second

// handleImageInspect serves GET /api/images/inspect?ref=REF behind the read token.
func handleImageInspect(token Secrets, images ImageInspector, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ref := r.URL.Query().Get("ref")
		attrs := []any{"route", "images/inspect", "remote", r.RemoteAddr, "ref", ref}
		if len(token) == 0 {
			writeError(w, log, apiFailed, &fault.Error{Kind: fault.NotFound, Msg: "the read API is off; set API_TOKEN to enable it"}, attrs...)
			return
		}
		if err := checkToken(token, r); err != nil {
			writeError(w, log, apiFailed, err, attrs...)
			return
		}
		if images == nil {
			writeError(w, log, apiFailed, &fault.Error{Kind: fault.NotFound, Msg: "image inspection is not available in this server"}, attrs...)
			return
		}
		if strings.TrimSpace(ref) == "" {
			writeError(w, log, apiFailed, badRequest("ref is missing: GET /api/images/inspect?ref=acme/web:1"), attrs...)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), inspectTimeout)
		defer cancel()
		rep, err := images.InspectImage(ctx, ref)
		if err != nil {
			writeError(w, log, apiFailed, err, attrs...)
			return
		}
		log.Debug("image inspected", append(attrs, "digest", rep.Image.Digest)...)
		writeJSON(w, http.StatusOK, rep)
	})
}
