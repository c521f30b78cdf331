package handler

import (
	"errors"
	"net/http"

	"github.com/berth-dev/berth/deployer"
)

// Errors the HTTP layer raises itself; deployer errors carry their own kind.
var (
	errUnauthorized = errors.New("unauthorized")
	errTooLarge     = errors.New("request body is larger than 1 MiB")
)

// statusFor is the one place that turns an error into an HTTP status.
func statusFor(err error) int {
	var maxBytes *http.MaxBytesError
	switch {
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, errTooLarge), errors.As(err, &maxBytes):
		return http.StatusRequestEntityTooLarge
	}
	switch deployer.KindOf(err) {
	case deployer.KindInvalid:
		return http.StatusBadRequest
	case deployer.KindForbidden:
		return http.StatusForbidden
	case deployer.KindNotFound:
		return http.StatusNotFound
	case deployer.KindConflict:
		return http.StatusConflict
	case deployer.KindUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

// publicMessage is what the caller may read about err: nothing for authentication failures
// (no hints to a guesser) and internal errors, the full message otherwise.
func publicMessage(err error, status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusInternalServerError:
		return "internal error; see berth's log"
	case http.StatusRequestEntityTooLarge:
		return errTooLarge.Error()
	}
	return err.Error()
}
