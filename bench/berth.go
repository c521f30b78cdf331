package main

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchSecret is the Docker Hub secret the benchmarked berth accepts.
const benchSecret = "bench-secret-0123456789abcdef"

// berthProc is berth running as a subprocess of the harness: the real binary, real config.
type berthProc struct {
	cmd     *exec.Cmd
	url     string
	logPath string
	started time.Time
	ready   time.Duration // process start to the first /healthz 200
	exited  chan error
}

// freePort returns a loopback port nobody listens on right now.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startBerth runs bin serving projectDirs and waits for /healthz to answer 200, polling every
// 200 µs so the ready time is precise.
func startBerth(ctx context.Context, bin, workDir string, projectDirs []string, extraEnv ...string) (*berthProc, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(workDir, "berth-"+strconv.FormatInt(time.Now().UnixNano(), 36)+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "OWNER=acme", "SECRET="+benchSecret, "LISTEN_ADDR="+addr,
		"PROJECT_DIR="+strings.Join(projectDirs, ","))
	cmd.Env = append(cmd.Env, extraEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	p := &berthProc{cmd: cmd, url: "http://" + addr, logPath: logPath}
	hc := &http.Client{Timeout: time.Second}
	p.started = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start berth: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := p.started.Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("berth exited before it was ready: %v\n%s", err, b)
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			return nil, ctx.Err()
		default:
		}
		resp, err := hc.Get(p.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.ready = time.Since(p.started)
				p.exited = exited
				return p, nil
			}
		}
		time.Sleep(200 * time.Microsecond)
	}
	_ = cmd.Process.Kill()
	return nil, fmt.Errorf("berth did not answer /healthz within 30 s; log in %s", logPath)
}

// stop sends SIGTERM and waits (bounded) for berth to exit.
func (p *berthProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
	}
}

// status reads a VmRSS/VmHWM-style field of berth's /proc status, in KiB.
func (p *berthProc) status(field string) int { return procStatus(p.cmd.Process.Pid, field) }

// procStatus reads a VmRSS/VmHWM-style field of process pid's /proc status, in KiB.
func procStatus(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return n
		}
	}
	return 0
}

// count is how often s occurs in berth's log so far.
func (p *berthProc) count(s string) int {
	b, _ := os.ReadFile(p.logPath)
	return strings.Count(string(b), s)
}
