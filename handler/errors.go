package handler

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
)

// Errors the HTTP layer raises itself; deployer errors carry their own kind.
var (
	errUnauthorized = errors.New("unauthorized")
	errTooLarge     = errors.New("request body is larger than 1 MiB")
)

// staleError is a correctly signed delivery whose signed timestamp is outside the window.
type staleError struct{ sent, now time.Time }

func (e staleError) Error() string {
	return fmt.Sprintf("webhook-timestamp %s is more than %s away from berth's clock (%s); check both clocks",
		e.sent.UTC().Format(time.RFC3339), maxSkew, e.now.UTC().Format(time.RFC3339))
}

// The log messages of refused requests, by where they were refused.
const (
	webhookRefused = "webhook refused"    // the webhook, the status API and the HTTPS-only listener
	apiFailed      = "api request failed" // the read API (image inspection)
	limitsRefused  = "request refused"    // the abuse limits, before any route
)

// writeError is berth's one error answer: the status statusFor maps err to, the public message
// as {"error": …}, Retry-After when err says when to come back, and one log line named event.
func writeError(w http.ResponseWriter, log *slog.Logger, event string, err error, attrs ...any) {
	status := statusFor(err)
	log.Log(context.Background(), logLevel(err, status), event, append(attrs, "status", status, "err", err)...)
	var later interface{ retryAfter() time.Duration }
	if errors.As(err, &later) {
		w.Header().Set("Retry-After", strconv.Itoa(int(ceilSecond(later.retryAfter()).Seconds())))
	}
	msg := publicMessage(err, status)
	var more interface{ answerFields() map[string]any }
	if status < 500 && status != http.StatusUnauthorized && errors.As(err, &more) {
		body := map[string]any{"error": msg}
		for k, v := range more.answerFields() {
			body[k] = v
		}
		writeJSON(w, status, body)
		return
	}
	// A struct, not a map: the refusals a flood gets are answered by the thousand.
	writeJSON(w, status, errorAnswer{msg})
}

// errorAnswer is the body of an error answer with nothing more to say than its message.
type errorAnswer struct {
	Error string `json:"error"`
}

// logLevel is error for berth's own failures and warn for the caller's. A rate-limited
// address is logged at debug only, or a flood would flood the log too (the warning was logged
// when it ran out of tokens); a busy berth is no failure of its own.
func logLevel(err error, status int) slog.Level {
	var limited rateLimitedError
	var busy busyError
	switch {
	case errors.As(err, &limited):
		return slog.LevelDebug
	case errors.As(err, &busy):
		return slog.LevelWarn
	case status >= 500:
		return slog.LevelError
	}
	return slog.LevelWarn
}

// statusFor is the one place that turns an error into an HTTP status.
func statusFor(err error) int {
	var maxBytes *http.MaxBytesError
	var stale staleError
	var limited rateLimitedError
	var busy busyError
	var slow slowBodyError
	switch {
	case errors.Is(err, errUnauthorized), errors.As(err, &stale):
		return http.StatusUnauthorized
	case errors.As(err, &limited):
		return http.StatusTooManyRequests
	case errors.As(err, &busy):
		return http.StatusServiceUnavailable
	case errors.As(err, &slow):
		return http.StatusRequestTimeout
	case errors.Is(err, errTooLarge), errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge
	}
	switch fault.KindOf(err) {
	case fault.Invalid:
		return http.StatusBadRequest
	case fault.Forbidden:
		return http.StatusForbidden
	case fault.NotFound:
		return http.StatusNotFound
	case fault.Conflict:
		return http.StatusConflict
	case fault.Unavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// publicMessage is what the caller may read about err: nothing for authentication failures
// (no hints to a guesser) and internal errors, the full message otherwise. A stale timestamp
// is only reported after its signature verified, so its message helps the key's holder alone.
func publicMessage(err error, status int) string {
	var stale staleError
	switch {
	case errors.As(err, &stale):
		return stale.Error()
	case status == http.StatusUnauthorized:
		return "unauthorized"
	case status == http.StatusInternalServerError:
		return "internal error; see berth's log"
	case status == http.StatusRequestEntityTooLarge:
		return errTooLarge.Error()
	}
	return err.Error()
}

func badRequest(format string, args ...any) error {
	return &fault.Error{Kind: fault.Invalid, Msg: fmt.Sprintf(format, args...)}
}

// disabled is the answer for a source kind that has no credential configured.
func disabled(kind, envVar string) error {
	return badRequest("%s webhooks are disabled: berth has no credential for them; set %s (or %s_FILE) to enable them", kind, envVar, envVar)
}
