package config

import (
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/compose"
)

// Logger is the logger LOG_LEVEL and LOG_FORMAT ask for, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger { return newLogger(w, c.LogLevel, c.LogFormat) }

func newLogger(w io.Writer, level, format string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Discover says whether berth finds the projects itself: neither PROJECT_DIR nor COMPOSE_FILE set.
func (c Config) Discover() bool {
	return strings.TrimSpace(c.ProjectDir) == "" && c.ComposeFile == ""
}

// Filter is PROJECTS and SKIP_PROJECTS, blanks dropped.
func (c Config) Filter() deployer.ProjectFilter {
	clean := func(names []string) []string {
		return slices.DeleteFunc(slices.Clone(names), func(s string) bool { return strings.TrimSpace(s) == "" })
	}
	return deployer.ProjectFilter{Allow: clean(c.AllowProjects), Deny: clean(c.SkipProjects)}
}

// ComposeEnviron is environ without berth's own variables, so ${OWNER} or a secret in a
// compose file cannot leak berth's.
func ComposeEnviron(environ []string) []string {
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(ownVars(), k) {
			out = append(out, kv)
		}
	}
	return out
}

// ProjectDirs is PROJECT_DIR split on commas, blanks dropped; "." when only COMPOSE_FILE is set.
func (c Config) ProjectDirs() []string {
	if strings.TrimSpace(c.ProjectDir) == "" && c.ComposeFile != "" {
		return []string{"."}
	}
	var dirs []string
	for _, d := range strings.Split(c.ProjectDir, ",") {
		if d = strings.TrimSpace(d); d != "" {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Projects turns PROJECT_DIR and the COMPOSE_* settings into the specs the deployer loads,
// resolving compose files against each project directory as users expect of a mounted project.
func (c Config) Projects(environ []string) []compose.Spec {
	var hostDirs []string
	if c.HostProjectDir != "" {
		hostDirs = strings.Split(c.HostProjectDir, ",")
	}
	var specs []compose.Spec
	for i, dir := range c.ProjectDirs() {
		spec := compose.Spec{Dir: dir, Name: c.ProjectName}
		if i < len(hostDirs) {
			spec.HostDir = strings.TrimSpace(hostDirs[i])
		}
		if c.ComposeFile != "" {
			for _, f := range strings.Split(c.ComposeFile, ":") {
				if !filepath.IsAbs(f) {
					f = filepath.Join(dir, f)
				}
				spec.Files = append(spec.Files, f)
			}
		}
		if c.Profiles != "" {
			spec.Profiles = strings.Split(c.Profiles, ",")
		}
		spec.Environ = ComposeEnviron(environ)
		specs = append(specs, spec)
	}
	return specs
}
