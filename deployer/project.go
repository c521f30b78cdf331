package deployer

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

// ProjectSpec says where a compose project lives, the way the compose CLI is told:
// a project directory, compose files, a project name, env files and profiles. Empty fields
// take the CLI's defaults (discovery of compose.yaml, .env, the directory name).
type ProjectSpec struct {
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

// loadProject reads the project the way `docker compose up` does (compose-go, the same option
// order as the CLI), with labels and service environments resolved, ready to hash and create.
func loadProject(ctx context.Context, spec ProjectSpec) (*types.Project, error) {
	opts, err := projectOptions(spec)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "compose project in %s: %w", spec.Dir, err)
	}
	if len(opts.ConfigPaths) == 0 && len(spec.Files) == 0 {
		wd, _ := opts.GetWorkingDir()
		return nil, fault.Errorf(fault.Invalid, "no compose file found in %s or its parents (looked for compose.yaml, docker-compose.yml, …); set COMPOSE_FILE", wd)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "load compose project: %w", err)
	}
	project, err = project.WithServicesEnvironmentResolved(true)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "resolve service environment of project %s: %w", project.Name, err)
	}
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
				if within(f, dir) {
					rel, _ := filepath.Rel(dir, f)
					files[i] = filepath.Join(spec.HostDir, rel)
				}
			}
		}
		envFiles = strings.Join(files, ",")
	}
	for name, s := range project.Services {
		s.CustomLabels = map[string]string{
			labelProject:    project.Name,
			labelService:    name,
			labelWorkingDir: project.WorkingDir,
			labelConfigs:    strings.Join(project.ComposeFiles, ","),
			labelOneoff:     "False",
		}
		if envFiles != "" {
			s.CustomLabels[labelEnvFiles] = envFiles
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
func projectOptions(spec ProjectSpec, extra ...cli.ProjectOptionsFn) (*cli.ProjectOptions, error) {
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

// The labels compose writes on what it creates; docker compose finds its containers by them.
const (
	labelPrefix     = "com.docker.compose."
	labelProject    = labelPrefix + "project"
	labelService    = labelPrefix + "service"
	labelVersion    = labelPrefix + "version"
	labelWorkingDir = labelPrefix + "project.working_dir"
	labelConfigs    = labelPrefix + "project.config_files"
	labelEnvFiles   = labelPrefix + "project.environment_file"
	labelOneoff     = labelPrefix + "oneoff"
	labelImage      = labelPrefix + "image"
	labelConfigHash = labelPrefix + "config-hash"
	labelNumber     = labelPrefix + "container-number"
	labelDependsOn  = labelPrefix + "depends_on"
	labelReplace    = labelPrefix + "replace"
	labelNetwork    = labelPrefix + "network"
	labelVolume     = labelPrefix + "volume"
)

// serviceReplicas is how many containers compose keeps for the service.
func serviceReplicas(s types.ServiceConfig) int {
	n := s.GetScale()
	if n < 0 {
		return 1
	}
	return n
}

// containerName is the name compose gives replica n of the service.
func containerName(project string, s types.ServiceConfig, n int) string {
	if s.ContainerName != "" {
		return s.ContainerName
	}
	return fmt.Sprintf("%s-%s-%d", project, s.Name, n)
}
