package handler

import (
	"crypto/subtle"
	"log/slog"
)

// Secret is a shared secret. It never prints: String, GoString and LogValue all redact it,
// so a secret passed to a logger or a format verb by mistake stays hidden.
type Secret string

// String redacts the secret.
func (Secret) String() string { return "[redacted]" }

// GoString redacts the secret for %#v.
func (Secret) GoString() string { return "[redacted]" }

// LogValue redacts the secret in slog output.
func (Secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// Equal compares the secret with a presented value in constant time; an empty secret never
// matches, so an unset secret cannot open a door.
func (s Secret) Equal(presented string) bool {
	if s == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(s), []byte(presented)) == 1
}
