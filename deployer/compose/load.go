// Package compose is what berth knows about compose projects: loading them as `docker compose`
// does, the labels and config hash compose writes, and the container create spec it would send.
// It is pure: it reads project files but makes no engine calls.
package compose

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/consts"
	"github.com/compose-spec/compose-go/v2/types"
)

// Spec says where a compose project lives, the way the compose CLI is told:
// a project directory, compose files, a project name, env files and profiles. Empty fields
// take the CLI's defaults (discovery of compose.yaml, .env, the directory name).
type Spec struct {
	Dir      string   // --project-directory
	Files    []string // -f, or COMPOSE_FILE split on ':'
	Name     string   // -p, or COMPOSE_PROJECT_NAME
	EnvFiles []string // --env-file
	Profiles []string // --profile, or COMPOSE_PROFILES
	// Environ is the environment compose would inherit from its shell, as KEY=VALUE.
	// Variables set here beat the project's .env, as in the CLI.
	Environ []string
	// HostDir is Dir as the Docker host sees it, when berth sees the project through a mount
	// (berth in a container); paths compose would write are rewritten to it. Empty: same path.
	HostDir string
}

// Key tells specs apart, for sharing loads: every field, each list's items and the lists
// themselves separated by bytes no path or variable holds. (fmt's %#v of the environment cost
// more than the match.)
func (s Spec) Key() string {
	var b strings.Builder
	for _, field := range [][]string{{s.Dir, s.Name, s.HostDir}, s.Files, s.EnvFiles, s.Profiles, s.Environ} {
		for _, v := range field {
			b.WriteString(v)
			b.WriteByte(0)
		}
		b.WriteByte(1)
	}
	return b.String()
}

// Load reads the project the way `docker compose up` does (compose-go, the same option
// order as the CLI), with labels and service environments resolved, ready to hash and create.
func Load(ctx context.Context, spec Spec) (*types.Project, error) {
	p, _, err := LoadFiles(ctx, spec)
	return p, err
}

// LoadFiles is Load, also returning the files the project was read from (compose files,
// env files, services' env_file), so that a cached load can tell when it went stale.
func LoadFiles(ctx context.Context, spec Spec) (*types.Project, []string, error) {
	opts, err := projectOptions(spec)
	if err != nil {
		return nil, nil, fault.Errorf(fault.Invalid, "compose project in %s: %w", spec.Dir, err)
	}
	if len(opts.ConfigPaths) == 0 && len(spec.Files) == 0 {
		wd, _ := opts.GetWorkingDir()
		return nil, nil, fault.Errorf(fault.Invalid, "no compose file found in %s or its parents (looked for compose.yaml, docker-compose.yml, …); set COMPOSE_FILE", wd)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, nil, fault.Errorf(fault.Invalid, "load compose project: %w", err)
	}
	files := slices.Concat(project.ComposeFiles, opts.EnvFiles)
	for _, s := range project.Services {
		for _, f := range s.EnvFiles {
			files = append(files, f.Path)
		}
	}
	project, err = project.WithServicesEnvironmentResolved(true)
	if err != nil {
		return nil, nil, fault.Errorf(fault.Invalid, "resolve service environment of project %s: %w", project.Name, err)
	}
	project, err = finishLoad(ctx, spec, opts, project)
	return project, files, err
}

// finishLoad writes what compose would write into a loaded project: bind options as written,
// host paths, and the labels compose puts on every container.
func finishLoad(ctx context.Context, spec Spec, opts *cli.ProjectOptions, project *types.Project) (*types.Project, error) {
	if err := markBindsAsWritten(ctx, spec, project); err != nil {
		return nil, err
	}
	if err := toHostPaths(project, spec.Dir, spec.HostDir); err != nil {
		return nil, fault.Errorf(fault.Invalid, "project %s: %w", project.Name, err)
	}
	envFiles := ""
	if len(spec.EnvFiles) > 0 {
		files := slices.Clone(opts.EnvFiles)
		if spec.HostDir != "" {
			dir, _ := filepath.Abs(spec.Dir)
			for i, f := range files {
				if Within(f, dir) {
					rel, _ := filepath.Rel(dir, f)
					files[i] = filepath.Join(spec.HostDir, rel)
				}
			}
		}
		envFiles = strings.Join(files, ",")
	}
	for name, s := range project.Services {
		s.CustomLabels = map[string]string{
			LabelProject:    project.Name,
			LabelService:    name,
			LabelWorkingDir: project.WorkingDir,
			LabelConfigs:    strings.Join(project.ComposeFiles, ","),
			LabelOneoff:     "False",
		}
		if envFiles != "" {
			s.CustomLabels[LabelEnvFiles] = envFiles
		}
		project.Services[name] = s
	}
	return project, nil
}

// composeFileRelativeTo resolves relative COMPOSE_FILE entries (often set in the project's .env)
// against the project directory: the CLI resolves them against its working directory, which for
// a user running compose is that directory, while berth's own working directory is elsewhere.
func composeFileRelativeTo(dir string) cli.ProjectOptionsFn {
	return func(o *cli.ProjectOptions) error {
		files, ok := o.Environment[consts.ComposeFilePath]
		if !ok || dir == "" || len(o.ConfigPaths) > 0 {
			return nil
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return fmt.Errorf("project directory %s: %w", dir, err)
		}
		sep := o.Environment[consts.ComposePathSeparator]
		if sep == "" {
			sep = string(os.PathListSeparator)
		}
		parts := strings.Split(files, sep)
		for i, f := range parts {
			if f != "" && f != "-" && !filepath.IsAbs(f) {
				parts[i] = filepath.Join(abs, f)
			}
		}
		o.Environment[consts.ComposeFilePath] = strings.Join(parts, sep)
		return nil
	}
}

// projectOptions are the compose-go options `docker compose` builds from its flags and
// environment, in the CLI's order; extra ones go last.
func projectOptions(spec Spec, extra ...cli.ProjectOptionsFn) (*cli.ProjectOptions, error) {
	return cli.NewProjectOptions(spec.Files, append([]cli.ProjectOptionsFn{
		cli.WithWorkingDirectory(spec.Dir),
		cli.WithEnv(spec.Environ),
		cli.WithEnvFiles(spec.EnvFiles...),
		cli.WithDotEnv,
		composeFileRelativeTo(spec.Dir),
		cli.WithConfigFileEnv,
		cli.WithDefaultConfigPath,
		cli.WithEnvFiles(spec.EnvFiles...),
		cli.WithDotEnv,
		cli.WithDefaultProfiles(spec.Profiles...),
		cli.WithName(spec.Name),
		cli.WithResolvedPaths(true),
		cli.WithoutEnvironmentResolution,
	}, extra...)...)
}
