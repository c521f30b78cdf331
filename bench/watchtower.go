package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The Watchtower fork the bench compares with: its last version whose dependencies the Go
// module proxy serves here.
const (
	watchtowerModule  = "github.com/nicholas-fedor/watchtower"
	watchtowerVersion = "v1.14.3"
	watchtowerScope   = "berthbench"
	watchtowerToken   = "bench-watchtower-token-0123456789"
	watchtowerPort    = "18080"
)

// watchtowerProc is the Watchtower fork running in a network namespace of its own: its
// registry check (a HEAD to Docker Hub for acme/web) fails at once instead of waiting on the
// internet, and it pulls through the engine, whose Hub mirror is the sandbox registry. The
// engine socket is a unix socket, which works across network namespaces; its HTTP API listens
// on the namespace's loopback, which the harness dials from a thread that joined the namespace.
type watchtowerProc struct {
	cmd     *exec.Cmd
	logPath string
	http    *http.Client
	exited  chan error
}

// watchtowerBinary returns the fork's binary: flag -watchtower names one, or "auto" uses the
// cached build, else builds it from -watchtower-src, else installs the module. why says what
// was missing when there is none.
func watchtowerBinary(ctx context.Context, o options) (bin, why string) {
	if o.watchtower == "off" {
		return "", "not measured (-watchtower off)"
	}
	if o.watchtower != "auto" {
		if _, err := os.Stat(o.watchtower); err != nil {
			return "", fmt.Sprintf("not available: -watchtower %s: %v", o.watchtower, err)
		}
		return o.watchtower, ""
	}
	cache := filepath.Dir(o.watchtowerSrc)
	bin = filepath.Join(cache, "watchtower-"+watchtowerVersion)
	if _, err := os.Stat(bin); err == nil {
		return bin, ""
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return "", "not available: " + err.Error()
	}
	if _, err := os.Stat(filepath.Join(o.watchtowerSrc, "go.mod")); err == nil {
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
		cmd.Dir, cmd.Env = o.watchtowerSrc, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Sprintf("not available: building %s failed: %v (%s)", o.watchtowerSrc, err, lastLine(out))
		}
		return bin, ""
	}
	cmd := exec.CommandContext(ctx, "go", "install", watchtowerModule+"@"+watchtowerVersion)
	cmd.Env = append(os.Environ(), "GOBIN="+cache, "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	out, err := cmd.CombinedOutput()
	if err != nil {
		reason := "go install failed"
		if strings.Contains(string(out), "403") || strings.Contains(string(out), "not available") {
			reason = "the Go module proxy does not serve " + watchtowerModule + "@" + watchtowerVersion
		}
		return "", fmt.Sprintf("not available: %s, and there is no source tree at %s (check out tag %s there)", reason, o.watchtowerSrc, watchtowerVersion)
	}
	if err := os.Rename(filepath.Join(cache, "watchtower"), bin); err != nil {
		return "", "not available: " + err.Error()
	}
	return bin, ""
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// startWatchtower runs bin in a new network namespace (only its loopback up) with the HTTP
// API update trigger, a bearer token, and label-enable in the bench's scope, and waits until
// the API listens.
func startWatchtower(ctx context.Context, bin, workDir string) (*watchtowerProc, error) {
	logPath := filepath.Join(workDir, "watchtower.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	// unshare execs sh, which execs the fork: the process id stays the fork's.
	cmd := exec.Command("unshare", "-n", "--", "sh", "-c", `ip link set lo up && exec "$0" "$@"`, bin,
		"--http-api-update", "--http-api-token", watchtowerToken, "--http-api-port", watchtowerPort,
		"--label-enable", "--scope", watchtowerScope, "--no-startup-message")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start watchtower: %w", err)
	}
	w := &watchtowerProc{cmd: cmd, logPath: logPath, exited: make(chan error, 1)}
	go func() { w.exited <- cmd.Wait() }()
	dial := netnsDialer(cmd.Process.Pid)
	w.http = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DialContext: dial}}
	for i := 0; i < 300; i++ {
		select {
		case err := <-w.exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("watchtower exited: %v\n%s", err, b)
		default:
		}
		if c, err := dial(ctx, "tcp", "127.0.0.1:"+watchtowerPort); err == nil {
			c.Close()
			return w, nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	w.stop()
	return nil, fmt.Errorf("watchtower's API did not listen within 6 s; log in %s", logPath)
}

// netnsDialer dials from the network namespace of process pid: the socket is made on an OS
// thread that joined that namespace, and that thread is never given back to other goroutines.
func netnsDialer(pid int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() {
			runtime.LockOSThread() // not unlocked: the thread exits with this goroutine
			f, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
			if err != nil {
				ch <- result{nil, err}
				return
			}
			defer f.Close()
			if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
				ch <- result{nil, fmt.Errorf("join the network namespace of %d: %w", pid, err)}
				return
			}
			var d net.Dialer
			c, err := d.DialContext(ctx, network, addr)
			ch <- result{c, err}
		}()
		r := <-ch
		return r.c, r.err
	}
}

// update triggers one update through the HTTP API; the fork answers once it is done.
func (w *watchtowerProc) update(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://127.0.0.1:"+watchtowerPort+"/v1/update", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+watchtowerToken)
	resp, err := w.http.Do(req)
	if err != nil {
		return fmt.Errorf("watchtower update: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("watchtower update answered %s: %s", resp.Status, b)
	}
	if strings.Contains(string(b), `"failed":1`) || strings.Contains(string(b), `"updated":0`) {
		return fmt.Errorf("watchtower did not update: %s (log in %s)", b, w.logPath)
	}
	return nil
}

// rss reads the fork's resident set (VmRSS, RssAnon), in KiB.
func (w *watchtowerProc) rss() (int, int) {
	return procStatus(w.cmd.Process.Pid, "VmRSS"), procStatus(w.cmd.Process.Pid, "RssAnon")
}

func (w *watchtowerProc) stop() {
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.exited:
	case <-time.After(10 * time.Second):
		_ = w.cmd.Process.Kill()
	}
}
