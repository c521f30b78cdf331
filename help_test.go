package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHelpHasNoSideEffects runs every subcommand with --help and -h: each prints its usage and
// exits 0 without listening. The addresses berth and the socket proxy would listen on are held
// by the test, so a command that tried to serve would fail to bind or, given a free port, would
// still be running when the bound wait ends. An unknown flag exits 2 with the usage line.
func TestHelpHasNoSideEffects(t *testing.T) {
	bin := buildBerth(t)
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	env := []string{"PATH=" + os.Getenv("PATH"), "OWNER=acme", "SECRET=" + testSecret,
		"LISTEN_ADDR=" + held.Addr().String(), "SOCKET_PROXY_LISTEN=" + held.Addr().String(),
		"SOCKET_PROXY_SOCKET=" + filepath.Join(t.TempDir(), "none.sock"), "DOCKER_HOST=unix://" + filepath.Join(t.TempDir(), "none.sock")}
	commands := []string{"serve", "deploy", "status", "approve", "check", "socket-proxy", "version"}
	for _, cmd := range commands {
		for _, flag := range []string{"--help", "-h"} {
			code, stdout, stderr := runBounded(t, bin, env, cmd, flag)
			if code != 0 || !strings.HasPrefix(stdout, "usage: berth "+cmd) || stderr != "" {
				t.Errorf("berth %s %s: exit %d, stdout %q, stderr %q; want 0 and its usage", cmd, flag, code, stdout, stderr)
			}
		}
		code, _, stderr := runBounded(t, bin, env, cmd, "--bogus")
		if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -bogus") || !strings.Contains(stderr, "usage: berth "+cmd) {
			t.Errorf("berth %s --bogus: exit %d, stderr %q; want 2 and the usage line", cmd, code, stderr)
		}
	}
	for _, args := range [][]string{{"help"}, {"--help"}, {"-h"}} {
		if code, stdout, _ := runBounded(t, bin, env, args...); code != 0 || !strings.Contains(stdout, "socket-proxy") {
			t.Errorf("berth %s: exit %d, stdout %q", args[0], code, stdout)
		}
	}
	if code, _, stderr := runBounded(t, bin, env, "bogus"); code != 2 || !strings.Contains(stderr, `unknown command "bogus"`) {
		t.Errorf("berth bogus: exit %d, stderr %q; want 2", code, stderr)
	}
}

// TestVersionIsStamped builds berth as the Dockerfile does, with the version and revision given
// to the linker, and checks `berth version` reports them.
func TestVersionIsStamped(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "berth")
	const pkg = "github.com/berth-dev/berth/internal/command"
	build := exec.Command("go", "build", "-o", bin, "-ldflags",
		"-X "+pkg+".stampedVersion=v9.8.7 -X "+pkg+".stampedRevision=0123456789ab", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	code, stdout, _ := runBounded(t, bin, nil, "version")
	if code != 0 || !strings.HasPrefix(stdout, "berth v9.8.7 (revision 0123456789ab, go") {
		t.Errorf("berth version: exit %d, %q; want the stamped version and revision", code, stdout)
	}
}

// runBounded runs bin with exactly env and args and fails the test if it is still running after
// 10 s (a command that started serving instead of printing help).
func runBounded(t *testing.T, bin string, env []string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("berth %s was still running after 10 s (it served instead of exiting)", strings.Join(args, " "))
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stdout.String(), stderr.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}
