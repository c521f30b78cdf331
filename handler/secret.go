package handler

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"strings"
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
// matches, so an unset secret cannot open a door. Both sides are hashed first so that the
// comparison does not even reveal the secret's length.
func (s Secret) Equal(presented string) bool {
	if s == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(presented))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}

// Secrets are the accepted values of one credential: several while one is being rotated out.
// An empty list disables the source kind it belongs to.
type Secrets []Secret

// ParseSecrets splits a comma-separated list, dropping blanks around and between entries.
func ParseSecrets(s string) Secrets {
	var out Secrets
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, Secret(v))
		}
	}
	return out
}

// Equal reports whether presented equals any of the secrets. Every secret is compared, so the
// time taken does not say which one matched.
func (ss Secrets) Equal(presented string) bool {
	ok := false
	for _, s := range ss {
		if s.Equal(presented) {
			ok = true
		}
	}
	return ok
}

// validHMAC reports whether sig is the hex HMAC-SHA256 of body under any of the secrets.
func (ss Secrets) validHMAC(body []byte, sig string) bool {
	want, err := hex.DecodeString(sig)
	if err != nil || len(want) != sha256.Size {
		return false
	}
	ok := false
	for _, s := range ss {
		if s == "" {
			continue
		}
		m := hmac.New(sha256.New, []byte(s))
		m.Write(body)
		if hmac.Equal(m.Sum(nil), want) {
			ok = true
		}
	}
	return ok
}
