package command

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Version is `berth version`: it prints the version stamped at build time.
func Version(stdout io.Writer) error {
	fmt.Fprintln(stdout, "berth", version())
	return nil
}

// Help is `berth help`: it prints the command list.
func Help(stdout io.Writer) error {
	fmt.Fprintln(stdout, usage)
	return nil
}

// version reports the module version stamped at build time, or "dev".
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

const usage = `usage: berth [command] [--help]

  serve         receive registry webhooks and redeploy compose services (default)
  deploy        redeploy one service now: berth deploy SERVICE [--image REF]
  status        show what runs, from a running berth's status API
  check         validate the configuration, projects, engine and registries; change nothing
  socket-proxy  forward to the Docker socket only the Engine API calls berth makes
  version       print the version

Configuration is read from environment variables; see README.md.`
