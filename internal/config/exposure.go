package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/berth-dev/berth/handler"
)

// Exposure is how berth faces the network: its certificate, the plain HTTP listener beside
// HTTPS, the trusted proxies and the abuse limits. It is embedded in Config.
type Exposure struct {
	TLSCertFile           string        `envconfig:"TLS_CERT_FILE"`
	TLSKeyFile            string        `envconfig:"TLS_KEY_FILE"`
	ACMEDomains           []string      `envconfig:"ACME_DOMAINS"`
	ACMEEmail             string        `envconfig:"ACME_EMAIL"`
	ACMEDirectoryURL      string        `envconfig:"ACME_DIRECTORY_URL"` // empty: autocert's default, Let's Encrypt
	ACMECARoots           string        `envconfig:"ACME_CA_ROOTS"`      // PEM file trusted for the ACME server's HTTPS
	HTTPAddr              string        `envconfig:"HTTP_ADDR"`          // challenges and redirect; ":80" with ACME, "off" for none
	TrustedProxies        string        `envconfig:"TRUSTED_PROXIES"`
	TrustedProxyHeader    string        `envconfig:"TRUSTED_PROXY_HEADER" default:"X-Forwarded-For"`
	RequestBodyTimeout    time.Duration `envconfig:"REQUEST_BODY_TIMEOUT" default:"5s"`
	AuthFailureBurst      int           `envconfig:"AUTH_FAILURE_BURST" default:"10"`
	AuthFailureRefill     time.Duration `envconfig:"AUTH_FAILURE_REFILL" default:"30s"`
	MaxConcurrentRequests int           `envconfig:"MAX_CONCURRENT_REQUESTS" default:"64"`
}

// exposureVars are the variables Exposure reads, kept out of compose interpolation.
func exposureVars() []string {
	return []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "ACME_DOMAINS", "ACME_EMAIL", "ACME_DIRECTORY_URL", "ACME_CA_ROOTS",
		"HTTP_ADDR", "TRUSTED_PROXIES", "TRUSTED_PROXY_HEADER", "REQUEST_BODY_TIMEOUT", "AUTH_FAILURE_BURST", "AUTH_FAILURE_REFILL", "MAX_CONCURRENT_REQUESTS"}
}

// TLSMode is "acme", "files" or "off".
func (e Exposure) TLSMode() string {
	switch {
	case len(e.Domains()) > 0:
		return "acme"
	case e.TLSCertFile != "" || e.TLSKeyFile != "":
		return "files"
	}
	return "off"
}

// Domains is ACME_DOMAINS lower-cased, blanks dropped.
func (e Exposure) Domains() []string {
	var out []string
	for _, d := range e.ACMEDomains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// PlainHTTPAddr is where the plain HTTP listener beside HTTPS binds; empty for none.
func (e Exposure) PlainHTTPAddr() string {
	switch {
	case e.HTTPAddr == "off":
		return ""
	case e.HTTPAddr == "" && e.TLSMode() == "acme":
		return ":80"
	}
	return e.HTTPAddr
}

// Validate checks the exposure settings (stateDir is STATE_DIR, where ACME keeps its files);
// each error names the variable to fix.
func (e Exposure) Validate(stateDir string) error {
	mode := e.TLSMode()
	switch {
	case (e.TLSCertFile == "") != (e.TLSKeyFile == ""):
		return errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together; set both (the certificate chain and its private key, PEM) or neither")
	case len(e.Domains()) > 0 && e.TLSCertFile != "":
		return errors.New("ACME_DOMAINS and TLS_CERT_FILE are both set; choose certificates from an ACME CA or from files, not both")
	case mode != "acme" && (e.ACMEEmail != "" || e.ACMEDirectoryURL != "" || e.ACMECARoots != ""):
		return errors.New("ACME_EMAIL, ACME_DIRECTORY_URL and ACME_CA_ROOTS need ACME_DOMAINS, the name(s) berth gets certificates for")
	case mode == "off" && e.HTTPAddr != "" && e.HTTPAddr != "off":
		return errors.New("HTTP_ADDR is the plain HTTP listener beside HTTPS (ACME challenges, redirect); without ACME_DOMAINS or TLS_CERT_FILE berth serves plain HTTP on LISTEN_ADDR alone, so unset HTTP_ADDR")
	case e.AuthFailureBurst < 1:
		return fmt.Errorf("AUTH_FAILURE_BURST=%d must be at least 1", e.AuthFailureBurst)
	case e.AuthFailureRefill <= 0:
		return fmt.Errorf("AUTH_FAILURE_REFILL=%s must be positive, e.g. 30s", e.AuthFailureRefill)
	case e.MaxConcurrentRequests < 1:
		return fmt.Errorf("MAX_CONCURRENT_REQUESTS=%d must be at least 1", e.MaxConcurrentRequests)
	case e.RequestBodyTimeout <= 0:
		return fmt.Errorf("REQUEST_BODY_TIMEOUT=%s must be positive, e.g. 5s", e.RequestBodyTimeout)
	case !validHeaderName(e.TrustedProxyHeader):
		return fmt.Errorf("TRUSTED_PROXY_HEADER=%q is not a header name; name the one header your proxy sets, e.g. X-Forwarded-For, X-Real-IP or Forwarded", e.TrustedProxyHeader)
	}
	for _, d := range e.Domains() {
		if err := checkDomain(d); err != nil {
			return fmt.Errorf("ACME_DOMAINS: %w", err)
		}
	}
	if e.ACMEDirectoryURL != "" {
		u, err := url.Parse(e.ACMEDirectoryURL)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return fmt.Errorf("ACME_DIRECTORY_URL=%q must be the CA's https:// directory URL", e.ACMEDirectoryURL)
		}
	}
	if mode == "acme" && strings.TrimSpace(stateDir) == "" {
		return errors.New("ACME_DOMAINS needs STATE_DIR, where berth keeps the ACME account key and certificates (STATE_DIR/acme), e.g. STATE_DIR=/var/lib/berth on a volume")
	}
	if _, err := handler.ParseTrustedProxies(e.TrustedProxies); err != nil {
		return fmt.Errorf("TRUSTED_PROXIES: %w", err)
	}
	return nil
}

// checkDomain accepts a DNS name a CA can issue for: no scheme, port, path or wildcard.
func checkDomain(d string) error {
	switch {
	case strings.ContainsAny(d, ":/*@ "):
		return fmt.Errorf("%q is not a bare domain name; write it as berth.example.com (no scheme, port, path or wildcard)", d)
	case !strings.Contains(strings.Trim(d, "."), "."):
		return fmt.Errorf("%q has no dot; an ACME CA issues for fully qualified names only, e.g. berth.example.com", d)
	case net.ParseIP(d) != nil:
		return fmt.Errorf("%q is an IP address; ACME certificates here are for domain names", d)
	}
	return nil
}

// validHeaderName accepts an HTTP header name (an RFC 9110 token).
func validHeaderName(h string) bool {
	if h == "" {
		return false
	}
	for _, c := range h {
		if c > 0x7e || c <= ' ' || strings.ContainsRune(`"(),/:;<=>?@[\]{}`, c) {
			return false
		}
	}
	return true
}

// Limits turns the settings into the handler's abuse limits.
func (e Exposure) Limits() handler.Limits {
	proxies, _ := handler.ParseTrustedProxies(e.TrustedProxies) // validated
	return handler.Limits{
		AuthBurst:      e.AuthFailureBurst,
		AuthRefill:     e.AuthFailureRefill,
		MaxConcurrent:  e.MaxConcurrentRequests,
		BodyTimeout:    e.RequestBodyTimeout,
		TrustedProxies: proxies,
		ProxyHeader:    e.TrustedProxyHeader,
	}
}
