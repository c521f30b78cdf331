package command

import (
	"cmp"
	"fmt"
	"io"
	"runtime/debug"
)

// stampedVersion and stampedRevision are set only by the linker
// (-ldflags "-X github.com/berth-dev/berth/internal/command.stampedVersion=v1.2.3"), from the
// Dockerfile's VERSION and REVISION build arguments; nothing assigns them at run time.
var stampedVersion, stampedRevision string

// Version is `berth version`: it prints the version stamped at build time.
func Version(args []string, stdout io.Writer) error {
	if err := noArgs("version", args, stdout, "Print berth's version, the source revision it was built from and the Go release."); err != nil {
		return noHelp(err)
	}
	v, rev, goVersion := buildVersion()
	fmt.Fprintf(stdout, "berth %s (revision %s, %s)\n", v, cmp.Or(rev, "unknown"), goVersion)
	return nil
}

// Help is `berth help`: it prints the command list.
func Help(stdout io.Writer) error {
	fmt.Fprintln(stdout, usage)
	return nil
}

// buildVersion is the version and revision the linker stamped, else what Go embedded: the module
// version for `go install …@v1.2.3`, the VCS revision for a build in a git checkout, else "dev".
func buildVersion() (version, revision, goVersion string) {
	version, revision, goVersion = stampedVersion, stampedRevision, "go unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return cmp.Or(version, "dev"), revision, goVersion
	}
	goVersion = bi.GoVersion
	if version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		version = bi.Main.Version
	}
	modified := false
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision" && revision == "":
			revision = s.Value
		case s.Key == "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if version == "" && revision != "" {
		version = "devel-" + revision[:min(12, len(revision))]
		if modified {
			version += "-dirty"
		}
	}
	return cmp.Or(version, "dev"), revision, goVersion
}

const usage = `usage: berth [command] [--help]

  serve         receive registry webhooks and redeploy compose services (default)
  deploy        redeploy one service now: berth deploy SERVICE [--image REF]
  status        show what runs, from a running berth's status API
  approve       approve (or --reject) the update watch mode holds for a service: berth approve SERVICE
  check         validate the configuration, projects, engine and registries; change nothing
  socket-proxy  forward to the Docker socket only the Engine API calls berth makes
  version       print the version

Every command takes --help. Configuration is read from environment variables; see README.md.`
