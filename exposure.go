package main

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/state"
	"github.com/berth-dev/berth/handler"
)

// Exposure is how berth faces the network: its certificate, the plain HTTP listener beside
// HTTPS, the trusted proxies and the abuse limits. It is embedded in config.
type Exposure struct {
	TLSCertFile           string        `envconfig:"TLS_CERT_FILE"`
	TLSKeyFile            string        `envconfig:"TLS_KEY_FILE"`
	ACMEDomains           []string      `envconfig:"ACME_DOMAINS"`
	ACMEEmail             string        `envconfig:"ACME_EMAIL"`
	ACMEDirectoryURL      string        `envconfig:"ACME_DIRECTORY_URL"` // empty: autocert's default, Let's Encrypt
	ACMECARoots           string        `envconfig:"ACME_CA_ROOTS"`      // PEM file trusted for the ACME server's HTTPS
	HTTPAddr              string        `envconfig:"HTTP_ADDR"`          // challenges and redirect; ":80" with ACME, "off" for none
	TrustedProxies        string        `envconfig:"TRUSTED_PROXIES"`
	AuthFailureBurst      int           `envconfig:"AUTH_FAILURE_BURST" default:"10"`
	AuthFailureRefill     time.Duration `envconfig:"AUTH_FAILURE_REFILL" default:"30s"`
	MaxConcurrentRequests int           `envconfig:"MAX_CONCURRENT_REQUESTS" default:"64"`
}

// exposureVars are the variables Exposure reads, kept out of compose interpolation.
func exposureVars() []string {
	return []string{"TLS_CERT_FILE", "TLS_KEY_FILE", "ACME_DOMAINS", "ACME_EMAIL", "ACME_DIRECTORY_URL", "ACME_CA_ROOTS",
		"HTTP_ADDR", "TRUSTED_PROXIES", "AUTH_FAILURE_BURST", "AUTH_FAILURE_REFILL", "MAX_CONCURRENT_REQUESTS"}
}

// tlsMode is "acme", "files" or "off".
func (e Exposure) tlsMode() string {
	switch {
	case len(e.domains()) > 0:
		return "acme"
	case e.TLSCertFile != "" || e.TLSKeyFile != "":
		return "files"
	}
	return "off"
}

func (e Exposure) domains() []string {
	var out []string
	for _, d := range e.ACMEDomains {
		if d = strings.ToLower(strings.TrimSpace(d)); d != "" {
			out = append(out, d)
		}
	}
	return out
}

// httpAddr is where the plain HTTP listener beside HTTPS binds; empty for none.
func (e Exposure) httpAddr() string {
	switch {
	case e.HTTPAddr == "off":
		return ""
	case e.HTTPAddr == "" && e.tlsMode() == "acme":
		return ":80"
	}
	return e.HTTPAddr
}

// validate checks the exposure settings (stateDir is STATE_DIR, where ACME keeps its files);
// each error names the variable to fix.
func (e Exposure) validate(stateDir string) error {
	mode := e.tlsMode()
	switch {
	case (e.TLSCertFile == "") != (e.TLSKeyFile == ""):
		return errors.New("TLS_CERT_FILE and TLS_KEY_FILE go together; set both (the certificate chain and its private key, PEM) or neither")
	case len(e.domains()) > 0 && e.TLSCertFile != "":
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
	}
	for _, d := range e.domains() {
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

// limits turns the settings into the handler's abuse limits; refusals are counted in counters.
func (e Exposure) limits(counters *handler.Counters) handler.Limits {
	proxies, _ := handler.ParseTrustedProxies(e.TrustedProxies) // validated
	return handler.Limits{
		AuthBurst:      e.AuthFailureBurst,
		AuthRefill:     e.AuthFailureRefill,
		MaxConcurrent:  e.MaxConcurrentRequests,
		TrustedProxies: proxies,
		Counters:       counters,
	}
}

// certificates builds the certificate source, or nil for plain HTTP.
func (e Exposure) certificates(stateDir string, log *slog.Logger) (*handler.TLS, error) {
	switch e.tlsMode() {
	case "files":
		return handler.NewFileTLS(e.TLSCertFile, e.TLSKeyFile, log)
	case "acme":
		var roots *x509.CertPool
		if e.ACMECARoots != "" {
			pem, err := os.ReadFile(e.ACMECARoots)
			if err != nil {
				return nil, fmt.Errorf("ACME_CA_ROOTS: %w", err)
			}
			roots, err = x509.SystemCertPool()
			if err != nil {
				roots = x509.NewCertPool()
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ACME_CA_ROOTS=%s holds no PEM certificate", e.ACMECARoots)
			}
		}
		return handler.NewACMETLS(handler.ACMEOptions{
			Domains:      e.domains(),
			Email:        e.ACMEEmail,
			DirectoryURL: e.ACMEDirectoryURL,
			Roots:        roots,
			CacheDir:     state.New(stateDir).ACME(),
		}, log)
	}
	return nil, nil
}

// web is berth's listeners and their servers: the webhook server (HTTPS or plain HTTP) and,
// with HTTPS, the plain HTTP one for ACME challenges and the redirect.
type web struct {
	ln, httpLn   net.Listener
	srv, httpSrv *http.Server
	tls          *handler.TLS
	mode         string
}

// listen binds the listeners, so a busy port stops berth at start and tests can ask for port 0.
func (e Exposure) listen(listenAddr, stateDir string, h http.Handler, log *slog.Logger) (*web, error) {
	certs, err := e.certificates(stateDir, log)
	if err != nil {
		return nil, err
	}
	w := &web{tls: certs, mode: e.tlsMode(), srv: newHTTPServer(h, log)}
	if w.ln, err = net.Listen("tcp", listenAddr); err != nil {
		return nil, fmt.Errorf("LISTEN_ADDR=%s: %w", listenAddr, err)
	}
	if certs == nil {
		return w, nil
	}
	w.srv.TLSConfig = certs.Config()
	if addr := e.httpAddr(); addr != "" {
		if w.httpLn, err = net.Listen("tcp", addr); err != nil {
			w.ln.Close()
			return nil, fmt.Errorf("HTTP_ADDR=%s: %w (set HTTP_ADDR=off to rely on the TLS-ALPN-01 challenge alone)", addr, err)
		}
		w.httpSrv = newHTTPServer(certs.HTTPHandler(), log)
	}
	return w, nil
}

func newHTTPServer(h http.Handler, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    handler.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// logAttrs describe the listeners for the "listening" line.
func (w *web) logAttrs() []any {
	attrs := []any{"addr", w.ln.Addr().String(), "tls", w.mode}
	if w.httpLn != nil {
		attrs = append(attrs, "http_addr", w.httpLn.Addr().String())
	}
	return attrs
}

// warnPlainHTTP logs the one warning for plain HTTP on a non-loopback address while a sender
// that carries its secret in the URL is enabled: anyone on the path can read that secret.
func (w *web) warnPlainHTTP(urlSecretVars []string, log *slog.Logger) {
	if w.mode != "off" || len(urlSecretVars) == 0 {
		return
	}
	if a, ok := w.ln.Addr().(*net.TCPAddr); ok && a.IP.IsLoopback() {
		return
	}
	log.Warn("serving plain HTTP on a non-loopback address while a webhook secret travels in the URL: anyone on the network path can read it. "+
		"Serve HTTPS (ACME_DOMAINS, or TLS_CERT_FILE and TLS_KEY_FILE), or listen on 127.0.0.1 behind a reverse proxy that terminates HTTPS",
		"addr", w.ln.Addr().String(), "credentials", strings.Join(urlSecretVars, ","))
}

// serve runs the servers; the first one that stops for a reason other than Shutdown is reported on served.
func (w *web) serve(served chan<- error) {
	if w.tls == nil {
		go func() { served <- w.srv.Serve(w.ln) }()
		return
	}
	go func() { served <- w.srv.ServeTLS(w.ln, "", "") }()
	if w.httpSrv != nil {
		go func() { served <- fmt.Errorf("HTTP_ADDR: %w", w.httpSrv.Serve(w.httpLn)) }()
	}
	go w.tls.Prepare()
}

// shutdown stops both servers gracefully.
func (w *web) shutdown(ctx context.Context) error {
	var errs []error
	if w.httpSrv != nil {
		errs = append(errs, w.httpSrv.Shutdown(ctx))
	}
	errs = append(errs, w.srv.Shutdown(ctx))
	return errors.Join(errs...)
}
