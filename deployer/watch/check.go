package watch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Throttled is a registry's refusal worth backing off from: 429 or 5xx, with its Retry-After.
type Throttled struct {
	Status     int
	RetryAfter time.Duration // 0 when the registry did not say
	Err        error
}

func (t *Throttled) Error() string {
	msg := fmt.Sprintf("registry answered %d %s", t.Status, http.StatusText(t.Status))
	if t.RetryAfter > 0 {
		msg += fmt.Sprintf(" (retry after %s)", t.RetryAfter)
	}
	return msg
}

func (t *Throttled) Unwrap() error { return t.Err }

// Head asks ref's registry for the digest its tag names now: one manifest HEAD accepting an
// OCI index, a Docker manifest list and OCI and Docker manifests, so a multi-arch tag answers
// with its index digest. It never pulls, and a HEAD does not count as a pull where registries
// limit pulls. It does not retry: the schedule backs off instead. kc gives the credentials
// (the pulls' own); rt (nil = the default transport) is the HTTP transport.
func Head(ctx context.Context, ref string, kc authn.Keychain, rt http.RoundTripper) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	if rt == nil {
		rt = remote.DefaultTransport
	}
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	rec := &retryAfter{base: rt}
	desc, err := remote.Head(r, remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(rec),
		remote.WithRetryStatusCodes(), remote.WithRetryPredicate(func(error) bool { return false }))
	if err != nil {
		if th := rec.throttled(err); th != nil {
			return "", th
		}
		return "", fmt.Errorf("HEAD manifest of %s: %w", r.Name(), err)
	}
	return desc.Digest.String(), nil
}

// retryAfter notes the Retry-After of the last refused answer, which transport.Error drops.
type retryAfter struct {
	base  http.RoundTripper
	mu    sync.Mutex
	after time.Duration
}

func (t *retryAfter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err == nil && (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500) {
		t.mu.Lock()
		t.after = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		t.mu.Unlock()
	}
	return resp, err
}

// throttled is err as a *Throttled when the registry answered 429 or 5xx, else nil.
func (t *retryAfter) throttled(err error) *Throttled {
	var te *transport.Error
	if errors.As(err, &te) && (te.StatusCode == http.StatusTooManyRequests || te.StatusCode >= 500) {
		return &Throttled{Status: te.StatusCode, RetryAfter: t.get(), Err: err}
	}
	return nil
}

func (t *retryAfter) get() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.after
}

// parseRetryAfter reads a Retry-After header: seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
