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
		if err := checkReadToken(token, r); err != nil {
			writeAPIError(w, log, err, attrs...)
			return
		}
		if images == nil {
			writeAPIError(w, log, &fault.Error{Kind: fault.NotFound, Msg: "image inspection is not available in this server"}, attrs...)
			return
		}
		if strings.TrimSpace(ref) == "" {
			writeAPIError(w, log, badRequest("ref is missing: GET /api/images/inspect?ref=acme/web:1"), attrs...)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), inspectTimeout)
		defer cancel()
		rep, err := images.InspectImage(ctx, ref)
		if err != nil {
			writeAPIError(w, log, err, attrs...)
			return
		}
		log.Debug("image inspected", append(attrs, "digest", rep.Image.Digest)...)
		writeJSON(w, http.StatusOK, rep)
	})
}

// checkReadToken admits a request bearing the read API's token; with no token configured the
// read API is off.
func checkReadToken(token Secrets, r *http.Request) error {
	if len(token) == 0 {
		return &fault.Error{Kind: fault.NotFound, Msg: "the read API is off; set API_TOKEN to enable it"}
	}
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || !token.Equal(presented) {
		return errUnauthorized
	}
	return nil
}

// writeAPIError answers a read API request with the error's status and public message.
func writeAPIError(w http.ResponseWriter, log *slog.Logger, err error, attrs ...any) {
	status := statusFor(err)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "api request failed", append(attrs, "status", status, "err", err)...)
	writeJSON(w, status, map[string]string{"error": publicMessage(err, status)})
}
