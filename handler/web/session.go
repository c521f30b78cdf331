package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
)

// sessionCookie names the login cookie; it is scoped to the page's paths.
const sessionCookie = "berth_session"

// sessionLife is how long a login lasts.
const sessionLife = 12 * time.Hour

// sessionKeys sign the session cookies and derive each session's CSRF token. Sessions are
// stateless (an expiry and a nonce, signed): nothing grows with the number of logins.
type sessionKeys struct{ key []byte }

func (k sessionKeys) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, k.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

// issue makes a session value that expires at exp.
func (k sessionKeys) issue(exp time.Time) string {
	var raw [24]byte
	binary.BigEndian.PutUint64(raw[:8], uint64(exp.Unix()))
	_, _ = rand.Read(raw[8:])
	body := base64.RawURLEncoding.EncodeToString(raw[:])
	return body + "." + base64.RawURLEncoding.EncodeToString(k.mac("session", body))
}

// valid reports whether v is a session this berth issued that has not expired at now.
func (k sessionKeys) valid(v string, now time.Time) bool {
	body, sig, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, k.mac("session", body)) {
		return false
	}
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil || len(raw) != 24 {
		return false
	}
	return now.Before(time.Unix(int64(binary.BigEndian.Uint64(raw[:8])), 0))
}

// csrf is the token a session's forms carry; only a page rendered for the session knows it.
func (k sessionKeys) csrf(session string) string {
	return base64.RawURLEncoding.EncodeToString(k.mac("csrf", session))
}

// caller is how a request to the page authenticated.
type caller struct {
	session string // the session cookie's value; "" for a bearer token
}

// errNoCredential is a request that presents neither a session nor a token: a first visit.
var errNoCredential = errors.New("no credential")

// authenticate admits r by its bearer token or its session cookie. A request that presents
// neither gets errNoCredential without touching the abuse limits; a wrong one counts against
// its address like any failed token.
func (u *UI) authenticate(r *http.Request) (caller, error) {
	if auth := r.Header.Get("Authorization"); auth != "" {
		presented, _ := strings.CutPrefix(auth, "Bearer ")
		return caller{}, u.deps.Admit(r, u.deps.Token(presented))
	}
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return caller{}, errNoCredential
	}
	ok := u.keys.valid(c.Value, u.deps.Now())
	if err := u.deps.Admit(r, ok); err != nil {
		return caller{}, err
	}
	return caller{session: c.Value}, nil
}

// required is authenticate for the routes that have no login form to show: a request with no
// credential fails like one with a wrong credential.
func (u *UI) required(r *http.Request) (caller, error) {
	c, err := u.authenticate(r)
	if errors.Is(err, errNoCredential) {
		err = u.deps.Admit(r, false)
	}
	return c, err
}

// checkForm refuses a state-changing request a session cookie authenticated unless it comes
// from berth's own page: same origin (Sec-Fetch-Site, Origin) and the session's CSRF token.
// A bearer token is not sent by browsers on their own, so it needs neither.
func (u *UI) checkForm(r *http.Request, c caller) error {
	if c.session == "" {
		return nil
	}
	if err := u.cop.Check(r); err != nil {
		return fault.Errorf(fault.Forbidden, "cross-origin request refused: %w", err)
	}
	want := u.keys.csrf(c.session)
	if !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(want)) {
		return fault.Errorf(fault.Forbidden, "the form's CSRF token is missing or wrong; reload the page and try again")
	}
	return nil
}

// setSession sets (value != "") or clears the session cookie.
func setSession(w http.ResponseWriter, r *http.Request, value string) {
	c := &http.Cookie{Name: sessionCookie, Value: value, Path: "/ui/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionLife.Seconds())}
	if value == "" {
		c.MaxAge = -1
	}
	http.SetCookie(w, c)
}

// handleLogin checks the API token from the login form and sets the session cookie.
func (u *UI) handleLogin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := u.cop.Check(r); err != nil {
			u.deps.Fail(w, r, fault.Errorf(fault.Forbidden, "cross-origin login refused: %w", err))
			return
		}
		ok := u.deps.Token(r.PostFormValue("token"))
		if err := u.deps.Admit(r, ok); err != nil {
			msg := "That is not berth's API token."
			if status := u.deps.Status(err); status != http.StatusUnauthorized {
				msg = err.Error()
			}
			u.renderLogin(w, u.deps.Status(err), msg)
			return
		}
		setSession(w, r, u.keys.issue(u.deps.Now().Add(sessionLife)))
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
}

// handleLogout clears the session cookie (the form carries the CSRF token, so another site
// cannot log the user out either).
func (u *UI) handleLogout() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.authenticate(r)
		if err == nil {
			err = u.checkForm(r, c)
		}
		if err != nil && !errors.Is(err, errNoCredential) {
			u.deps.Fail(w, r, err)
			return
		}
		setSession(w, r, "")
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	})
}

// renderLogin answers with the login form and status.
func (u *UI) renderLogin(w http.ResponseWriter, status int, msg string) {
	u.render(w, status, loginHTML(msg))
}
