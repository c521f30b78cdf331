// Command berth redeploys docker compose services when a registry reports a push.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/command"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "berth:", err)
		if errors.As(err, new(command.UsageError)) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// run is berth: it picks the subcommand args name and returns when that command is done (serve:
// when ctx ends, after a graceful stop) or on a fatal error. getenv is the only way anything
// below reads the configuration; environ (KEY=VALUE) is what compose files are interpolated with.
func run(ctx context.Context, args []string, getenv func(string) string, environ []string, stdout, stderr io.Writer) error {
	cmd, rest := "serve", []string{}
	if len(args) > 1 {
		cmd, rest = args[1], args[2:]
	}
	if strings.HasPrefix(cmd, "-") && cmd != "-h" && cmd != "--help" && cmd != "--version" {
		cmd, rest = "serve", args[1:]
	}
	env := command.Env{Getenv: getenv, Environ: environ}
	switch cmd {
	case "serve":
		return command.Serve(ctx, rest, env, stdout, stderr)
	case "deploy":
		return command.Deploy(ctx, rest, env, stdout, stderr)
	case "status":
		return command.Status(ctx, rest, getenv, stdout)
	case "approve":
		return command.Approve(ctx, rest, getenv, stdout)
	case "check":
		return command.Check(ctx, rest, env, stdout, stderr)
	case "socket-proxy":
		return command.SocketProxy(ctx, rest, getenv, stdout, stderr)
	case "version", "--version":
		return command.Version(rest, stdout)
	case "help", "-h", "--help":
		return command.Help(stdout)
	default:
		return command.Usagef("unknown command %q; run berth help", cmd)
	}
}
