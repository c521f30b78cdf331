package command

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer/state"
	"github.com/berth-dev/berth/handler"
	"github.com/berth-dev/berth/internal/config"
)

// certificates builds the certificate source e asks for, or nil for plain HTTP.
func certificates(e config.Exposure, stateDir string, log *slog.Logger) (*handler.TLS, error) {
	switch e.TLSMode() {
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
			Domains:      e.Domains(),
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
func listen(e config.Exposure, listenAddr, stateDir string, h http.Handler, log *slog.Logger) (*web, error) {
	certs, err := certificates(e, stateDir, log)
	if err != nil {
		return nil, err
	}
	w := &web{tls: certs, mode: e.TLSMode(), srv: newHTTPServer(h, log)}
	if w.ln, err = net.Listen("tcp", listenAddr); err != nil {
		return nil, fmt.Errorf("LISTEN_ADDR=%s: %w", listenAddr, err)
	}
	if certs == nil {
		return w, nil
	}
	w.srv.TLSConfig = certs.Config()
	if addr := e.PlainHTTPAddr(); addr != "" {
		if w.httpLn, err = net.Listen("tcp", addr); err != nil {
			w.ln.Close()
			return nil, fmt.Errorf("HTTP_ADDR=%s: %w (set HTTP_ADDR=off to rely on the TLS-ALPN-01 challenge alone)", addr, err)
		}
		w.httpSrv = newHTTPServer(certs.HTTPHandler(), log)
	}
	return w, nil
}

// newHTTPServer bounds a request's header, body and idle time.
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
