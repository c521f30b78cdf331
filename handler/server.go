// Package handler is berth's HTTP surface: it authenticates webhook calls, turns each sender's
// payload into deployer requests and reports the outcome. It knows nothing of Docker.
package handler

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/deployer"
)

// maxBody bounds a webhook body; real payloads are a few KiB.
const maxBody = 1 << 20

// Deployer is what the handler needs from the deployer.
type Deployer interface {
	Deploy(ctx context.Context, req deployer.Request) (deployer.Ticket, error)
}

// Config holds the credentials of the webhook senders.
type Config struct {
	Secret Secret // the secret Docker Hub presents in the URL's query
}

// source is one kind of webhook sender: how it proves who it is and what its payload means.
type source interface {
	name() string
	authenticate(r *http.Request, body []byte) error
	parse(body []byte) ([]deployer.Request, error)
}

// NewServer returns berth's HTTP handler with every route.
func NewServer(cfg Config, d Deployer, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, cfg, d, log)
	return mux
}

// webhookResult is the JSON answer to a webhook that passed authentication.
type webhookResult struct {
	Status   string   `json:"status"` // "queued" or "ignored"
	Deploy   string   `json:"deploy,omitempty"`
	Image    string   `json:"image,omitempty"`
	Services []string `json:"services"`
	Reason   string   `json:"reason,omitempty"`
}

func handleWebhook(sources []source, d Deployer, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		src := sources[0]
		attrs := []any{"source", src.name(), "remote", r.RemoteAddr}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			writeError(w, log, err, attrs...)
			return
		}
		if err := src.authenticate(r, body); err != nil {
			writeError(w, log, err, attrs...)
			return
		}
		reqs, err := src.parse(body)
		if err != nil {
			writeError(w, log, err, attrs...)
			return
		}
		res := webhookResult{Status: "ignored", Services: []string{}}
		for _, req := range reqs {
			attrs := append(attrs, "repository", req.Repository, "tag", req.Tag)
			t, err := d.Deploy(r.Context(), req)
			if err != nil {
				writeError(w, log, err, attrs...)
				return
			}
			res.Image = t.Image
			if len(t.Services) > 0 {
				res.Status, res.Deploy = "queued", t.ID
				res.Services = append(res.Services, t.Services...)
			}
		}
		status := http.StatusAccepted
		if res.Status == "ignored" {
			status = http.StatusOK
			res.Reason = "no service in the compose project runs " + res.Image
		}
		log.Info("webhook", append(attrs, "outcome", res.Status, "status", status, "deploy", res.Deploy,
			"services", strings.Join(res.Services, ","))...)
		writeJSON(w, status, res)
	})
}

func handleHealthz() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
}

func writeError(w http.ResponseWriter, log *slog.Logger, err error, attrs ...any) {
	status := statusFor(err)
	level := slog.LevelWarn
	if status >= 500 {
		level = slog.LevelError
	}
	log.Log(context.Background(), level, "webhook refused", append(attrs, "status", status, "err", err)...)
	writeJSON(w, status, map[string]string{"error": publicMessage(err, status)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
