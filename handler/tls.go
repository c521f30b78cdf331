package handler

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// certCheckInterval is how often the certificate files are looked at for a change: a stat
// per handshake would be wasted, and renewals land days before expiry.
const certCheckInterval = 2 * time.Second

// TLS is where berth's HTTPS certificate comes from: files on disk or an ACME CA.
type TLS struct {
	config  *tls.Config
	manager *autocert.Manager // nil for files
	domains []string
	log     *slog.Logger
}

// Config is the tls.Config for the HTTPS listener.
func (t *TLS) Config() *tls.Config { return t.config }

// HTTPHandler serves the plain HTTP listener beside HTTPS: ACME HTTP-01 challenges (when
// certificates come from ACME), and otherwise a redirect to HTTPS for browsers and a refusal
// for webhooks, whose URL secret must not travel in clear.
func (t *TLS) HTTPHandler() http.Handler {
	fallback := handleHTTPSOnly(t.log)
	if t.manager == nil {
		return fallback
	}
	return t.manager.HTTPHandler(fallback)
}

// Prepare obtains the ACME certificates now rather than at the first handshake, so a
// misconfiguration shows in the log at start; it logs the outcome per domain and returns.
func (t *TLS) Prepare() {
	if t.manager == nil {
		return
	}
	for _, d := range t.domains {
		hello := &tls.ClientHelloInfo{
			ServerName:        d,
			SignatureSchemes:  []tls.SignatureScheme{tls.ECDSAWithP256AndSHA256},
			SupportedCurves:   []tls.CurveID{tls.CurveP256},
			CipherSuites:      []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
			SupportedVersions: []uint16{tls.VersionTLS13, tls.VersionTLS12},
		}
		cert, err := t.manager.GetCertificate(hello)
		if err != nil {
			t.log.Error("cannot obtain a certificate from the ACME CA; HTTPS handshakes for this domain fail until it succeeds (berth retries at each handshake)",
				"domain", d, "err", err)
			continue
		}
		t.log.Info("certificate ready", "domain", d, "expires", cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
	}
}

// ACMEOptions configure certificates from an ACME CA.
type ACMEOptions struct {
	Domains      []string       // names berth answers for; certificates are only requested for these
	Email        string         // contact for the CA's expiry notices; optional
	DirectoryURL string         // the CA's directory; Let's Encrypt's production one when empty
	Roots        *x509.CertPool // CAs trusted for the ACME server's own HTTPS; the system's when nil
	CacheDir     string         // where the account key and certificates are kept
}

// NewACMETLS gets certificates from an ACME CA with golang.org/x/crypto/acme/autocert: the
// TLS-ALPN-01 challenge is answered on the HTTPS listener, HTTP-01 through HTTPHandler.
func NewACMETLS(o ACMEOptions, log *slog.Logger) (*TLS, error) {
	if err := os.MkdirAll(o.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("ACME cache: %w", err)
	}
	client := &acme.Client{DirectoryURL: o.DirectoryURL, UserAgent: "berth"}
	if o.Roots != nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: o.Roots, MinVersion: tls.VersionTLS12}
		client.HTTPClient = &http.Client{Transport: tr, Timeout: time.Minute}
	}
	m := &autocert.Manager{
		Prompt:     autocert.AcceptTOS,
		Cache:      autocert.DirCache(o.CacheDir),
		HostPolicy: autocert.HostWhitelist(o.Domains...),
		Email:      o.Email,
		Client:     client,
	}
	cfg := m.TLSConfig()
	cfg.MinVersion = tls.VersionTLS12
	get := cfg.GetCertificate
	// A client that sends no server name (an IP in the URL) gets the first domain's
	// certificate instead of a failed handshake it could not make sense of.
	cfg.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if hello.ServerName == "" {
			h := *hello
			h.ServerName = o.Domains[0]
			hello = &h
		}
		return get(hello)
	}
	return &TLS{config: cfg, manager: m, domains: o.Domains, log: log}, nil
}

// NewFileTLS serves the certificate in certFile (PEM, leaf first, then intermediates) with the
// key in keyFile, re-reading both when either changes on disk, so a renewal needs no restart.
func NewFileTLS(certFile, keyFile string, log *slog.Logger) (*TLS, error) {
	cf := &certFiles{certFile: certFile, keyFile: keyFile, log: log, now: time.Now}
	if err := cf.load(); err != nil {
		return nil, err
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: cf.getCertificate}
	return &TLS{config: cfg, log: log}, nil
}

// certFiles holds the certificate read from files and notices when they change.
type certFiles struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu                sync.Mutex
	cert              *tls.Certificate
	certStat, keyStat os.FileInfo
	checked           time.Time
}

func (c *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= certCheckInterval {
		c.checked = now
		if c.changed() {
			if err := c.loadLocked(); err != nil {
				// Often the two files are caught mid-swap; the old pair keeps serving.
				c.log.Warn("certificate files changed but do not load; still serving the previous certificate", "err", err)
			} else {
				c.log.Info("certificate reloaded", "file", c.certFile, "expires", c.cert.Leaf.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
	return c.cert, nil
}

// changed says whether either file differs from the pair in use (replaced, rewritten, resized).
func (c *certFiles) changed() bool {
	differs := func(path string, old os.FileInfo) bool {
		fi, err := os.Stat(path)
		return err == nil && (!os.SameFile(fi, old) || !fi.ModTime().Equal(old.ModTime()) || fi.Size() != old.Size())
	}
	return differs(c.certFile, c.certStat) || differs(c.keyFile, c.keyStat)
}

func (c *certFiles) load() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.loadLocked()
}

func (c *certFiles) loadLocked() error {
	certStat, err := os.Stat(c.certFile)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE: %w", err)
	}
	keyStat, err := os.Stat(c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS_KEY_FILE: %w", err)
	}
	pair, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("TLS_CERT_FILE=%s with TLS_KEY_FILE=%s: %w", c.certFile, c.keyFile, err)
	}
	c.cert, c.certStat, c.keyStat = &pair, certStat, keyStat
	return nil
}

// handleHTTPSOnly answers plain HTTP when berth serves HTTPS: browsers are redirected, and
// anything else is refused, because a webhook sent here has already shown its URL secret.
func handleHTTPSOnly(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		target := "https://" + host + r.URL.Path
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
		writeError(w, log, webhookRefused, badRequest("berth accepts webhooks over HTTPS only: send them to %s; a secret in the URL of this request crossed the network unencrypted, so replace it", target),
			"remote", r.RemoteAddr, "listener", "http")
	})
}
