package handler

import (
	"errors"
	"fmt"
	"net/http"
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

// statusFor is the one place that turns an error into an HTTP status.
func statusFor(err error) int {
	var maxBytes *http.MaxBytesError
	var stale staleError
	var limited rateLimitedError
	var busy busyError
	switch {
	case errors.Is(err, errUnauthorized), errors.As(err, &stale):
		return http.StatusUnauthorized
	case errors.As(err, &limited):
		return http.StatusTooManyRequests
	case errors.As(err, &busy):
		return http.StatusServiceUnavailable
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
