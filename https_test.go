package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// pebbleVersion is the ACME test server the ACME test builds; its go directive (1.24) is met
// by berth's toolchain.
const pebbleVersion = "v2.10.1"

// startBerthTLS runs berth in-process like startBerth, for configurations that serve HTTPS:
// it returns the addresses from the "listening" line and waits until /healthz answers
// through client on https://addr.
func startBerthTLS(t *testing.T, env map[string]string, client *http.Client) (addr, httpAddr string, logs *deployertest.Log) {
	t.Helper()
	listening, logs, stop := launchBerth(t, env)
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("berth exited with %v", err)
		}
	})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("berth's log:\n%s", logs.String())
		}
	})
	m := regexp.MustCompile(`addr=(\S+) tls=\S+(?: http_addr=(\S+))?`).FindStringSubmatch(listening)
	if m == nil {
		t.Fatalf("berth listens without TLS: %s", listening)
	}
	addr, httpAddr = m[1], m[2]
	deployertest.Eventually(t, "/healthz over HTTPS", 60*time.Second, func() bool {
		resp, err := client.Get("https://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return addr, httpAddr, logs
}

// testCA is a throwaway certificate authority for the file certificates.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

// issue writes a leaf for 127.0.0.1 named cn to certFile and keyFile, replacing them the way
// certificate tools do: written beside, then renamed over.
func (ca *testCA) issue(t *testing.T, cn, certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	serial, _ := rand.Int(rand.Reader, big.NewInt(1<<62))
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: cn}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
	write := func(path, typ string, b []byte) {
		tmp := path + ".new"
		if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: b}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	write(keyFile, "PRIVATE KEY", keyDER)
	write(certFile, "CERTIFICATE", der)
}

// servedName is the common name of the certificate berth presents on addr.
func servedName(addr string, roots *x509.CertPool) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, &tls.Config{RootCAs: roots})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestHTTPSCertificateFilesReload: berth serves HTTPS with the certificate in TLS_CERT_FILE
// and picks up a renewed pair swapped on disk without a restart; a pair that does not match
// keeps the old certificate serving.
func TestHTTPSCertificateFilesReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca := newTestCA(t)
	ca.issue(t, "first", certFile, keyFile)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	addr, _, logs := startBerthTLS(t, map[string]string{"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile}, client)
	if name, err := servedName(addr, ca.pool); err != nil || name != "first" {
		t.Fatalf("served %q (%v), want the first certificate", name, err)
	}

	// A key that does not belong to the certificate: the old pair keeps serving.
	other := t.TempDir()
	ca.issue(t, "mismatched", filepath.Join(other, "c.pem"), filepath.Join(other, "k.pem"))
	if err := os.Rename(filepath.Join(other, "k.pem"), keyFile); err != nil {
		t.Fatal(err)
	}
	deployertest.Eventually(t, "berth to notice the broken pair", 15*time.Second, func() bool {
		_, _ = servedName(addr, ca.pool)
		return strings.Contains(logs.String(), "certificate files changed but do not load")
	})
	if name, err := servedName(addr, ca.pool); err != nil || name != "first" {
		t.Errorf("after a broken swap berth served %q (%v), want still the first certificate", name, err)
	}

	ca.issue(t, "renewed", certFile, keyFile)
	deployertest.Eventually(t, "the renewed certificate to be served", 15*time.Second, func() bool {
		name, err := servedName(addr, ca.pool)
		return err == nil && name == "renewed"
	})
	status, body := postWith(t, client, "https://"+addr+"/webhook?secret=wrong", dockerHubPayload(t, "1.0"))
	if status != http.StatusUnauthorized {
		t.Errorf("webhook over HTTPS with a wrong secret: %d %s", status, body)
	}
	if strings.Contains(logs.String(), "serving plain HTTP") {
		t.Error("berth warned about plain HTTP while serving HTTPS")
	}
}

func postWith(t *testing.T, c *http.Client, url, body string) (int, string) {
	t.Helper()
	resp, err := c.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// pebble is a running Pebble ACME server on loopback.
type pebble struct {
	dir   string         // its directory URL
	trust *x509.CertPool // what its own HTTPS is signed by (ACME_CA_ROOTS)
	roots string         // that CA's PEM file
	mgmt  string         // its management address
}

// startPebble builds Pebble with `go install` and runs it on 127.0.0.1 with validation off
// (PEBBLE_VA_ALWAYS_VALID), skipping when the module cannot be downloaded unless
// BERTH_REQUIRE_ENGINE=1.
func startPebble(t *testing.T) *pebble {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("go", "install", "github.com/letsencrypt/pebble/v2/cmd/pebble@"+pebbleVersion)
	cmd.Dir = bin
	cmd.Env = append(os.Environ(), "GOBIN="+bin, "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		msg := fmt.Sprintf("cannot build Pebble %s (is the Go module proxy reachable?): %v\n%s", pebbleVersion, err, out)
		if os.Getenv("BERTH_REQUIRE_ENGINE") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	modCache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(strings.TrimSpace(string(modCache)), "github.com/letsencrypt/pebble/v2@"+pebbleVersion)
	raw, err := os.ReadFile(filepath.Join(src, "test/config/pebble-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	listen, mgmt := freeAddr(t), freeAddr(t)
	p := cfg["pebble"]
	p["listenAddress"], p["managementListenAddress"] = listen, mgmt
	p["certificate"], p["privateKey"] = filepath.Join(src, "test/certs/localhost/cert.pem"), filepath.Join(src, "test/certs/localhost/key.pem")
	p["retryAfter"] = map[string]int{"authz": 1, "order": 1}
	b, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(bin, "pebble.json")
	if err := os.WriteFile(cfgFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(bin, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	run := exec.Command(filepath.Join(bin, "pebble"), "-config", cfgFile)
	run.Env = []string{"PATH=" + os.Getenv("PATH"), "PEBBLE_VA_ALWAYS_VALID=1", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0"}
	run.Stdout, run.Stderr = logf, logf
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = run.Process.Kill()
		_ = run.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logf.Name())
			t.Logf("pebble's log:\n%s", out)
		}
	})
	roots := filepath.Join(src, "test/certs/pebble.minica.pem")
	pemBytes, err := os.ReadFile(roots)
	if err != nil {
		t.Fatal(err)
	}
	trust := x509.NewCertPool()
	trust.AppendCertsFromPEM(pemBytes)
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: trust}}}
	deployertest.Eventually(t, "pebble to answer", 20*time.Second, func() bool {
		resp, err := c.Get("https://" + listen + "/dir")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return &pebble{dir: "https://" + listen + "/dir", trust: trust, roots: roots, mgmt: mgmt}
}

// issuingRoot is the root Pebble signs certificates with (new at each start).
func (p *pebble) issuingRoot(t *testing.T) *x509.CertPool {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.trust}}}
	resp, err := c.Get("https://" + p.mgmt + "/roots/0")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		t.Fatalf("pebble's root is not PEM: %s", b)
	}
	return pool
}

// TestHTTPSWithACME: berth gets its certificate from an ACME CA (Pebble, on loopback), serves
// the webhook over HTTPS to a client that trusts only that CA's root, and keeps the
// certificate in STATE_DIR/acme. Its plain HTTP listener refuses
// webhooks (their URL secret must not travel in clear) and redirects browsers.
func TestHTTPSWithACME(t *testing.T) {
	pb := startPebble(t)
	const domain = "berth.example.test"
	// The project runs another image, so the authenticated webhook is answered (200, nothing
	// to deploy; 503 where no engine answers at all): what is under test is the transport.
	dir := deployertest.WriteProject(t, "acmetls", "services:\n  web:\n    image: acme/other:1\n")

	state := t.TempDir()
	// The client trusts Pebble's issuing root alone.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		ServerName: domain, RootCAs: pb.issuingRoot(t)}}}
	addr, httpAddr, logs := startBerthTLS(t, map[string]string{
		"PROJECT_DIR":        dir,
		"ACME_DOMAINS":       domain,
		"ACME_DIRECTORY_URL": pb.dir,
		"ACME_CA_ROOTS":      pb.roots,
		"STATE_DIR":          state,
		"HTTP_ADDR":          "127.0.0.1:0",
	}, client)

	status, body := postWith(t, client, "https://"+addr+"/webhook?secret="+testSecret, dockerHubPayload(t, "1.0"))
	// With no engine at all berth refuses every push with a 503 (the sender retries): also a
	// complete answer over the TLS transport under test.
	noEngine := status == http.StatusServiceUnavailable && strings.Contains(body, "does not answer")
	if !noEngine && (status != http.StatusOK || !strings.Contains(body, `"status":"ignored"`)) {
		t.Fatalf("authenticated webhook over HTTPS answered %d %s, want 200 ignored", status, body)
	}
	if status, _ := postWith(t, client, "https://"+addr+"/webhook?secret=wrong-secret", dockerHubPayload(t, "1.0")); status != http.StatusUnauthorized {
		t.Errorf("wrong secret over HTTPS: %d, want 401", status)
	}
	if _, err := os.Stat(filepath.Join(state, "acme", domain)); err != nil {
		t.Errorf("the certificate is not cached in STATE_DIR/acme: %v", err)
	}
	// A client that does not trust Pebble's root refuses berth's certificate.
	if _, err := (&http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{ServerName: domain}}}).Get("https://" + addr + "/healthz"); err == nil {
		t.Error("a client trusting only the system roots accepted Pebble's certificate")
	}

	if httpAddr == "" {
		t.Fatalf("no HTTP listener logged:\n%s", logs.String())
	}
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	status, body = postWith(t, plain, "http://"+httpAddr+"/webhook?secret="+testSecret, dockerHubPayload(t, "1.0"))
	if status != http.StatusBadRequest || !strings.Contains(body, "HTTPS only") {
		t.Errorf("webhook over plain HTTP answered %d %s, want 400 saying HTTPS only", status, body)
	}
	resp, err := plain.Get("http://" + httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(resp.Header.Get("Location"), "https://") {
		t.Errorf("GET over plain HTTP: %s to %q, want a redirect to https", resp.Status, resp.Header.Get("Location"))
	}
	if !strings.Contains(logs.String(), "certificate ready") {
		t.Errorf("berth did not log the certificate it obtained:\n%s", logs.String())
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Error("the secret appears in berth's log")
	}
}

// TestHeaderAndPlainHTTPWarning: oversized headers are refused before berth reads them, and
// plain HTTP on loopback draws no warning (internal/command's TestPlainHTTPWarning covers the rest).
func TestHeaderAndPlainHTTPWarning(t *testing.T) {
	t.Parallel()
	url, logs := startBerth(t, map[string]string{"PROJECT_DIR": deployertest.WriteProject(t, "empty", "services: {}\n")})
	req, _ := http.NewRequest(http.MethodPost, url+"/webhook?secret="+testSecret, strings.NewReader("{}"))
	req.Header.Set("X-Padding", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("64 KiB header: %s, want 431", resp.Status)
	}
	if strings.Contains(logs.String(), "serving plain HTTP") {
		t.Error("warned about plain HTTP on loopback")
	}
}
