package compose

import (
	"errors"
	"path/filepath"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
)

// Within says whether path is dir or below it.
func Within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// toHostPaths rewrites the paths compose-go resolved under the project directory as berth sees
// it (dir) into the same paths on the host (hostDir): the working directory, the compose files,
// bind sources, and secret and config files. Absolute paths elsewhere are the host's already.
func toHostPaths(p *types.Project, dir, hostDir string) error {
	if hostDir == "" {
		return nil
	}
	if !filepath.IsAbs(hostDir) {
		return errors.New("HOST_PROJECT_DIR must be an absolute path, got " + hostDir)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	move := func(path string) string {
		if !Within(path, dir) {
			return path
		}
		rel, _ := filepath.Rel(dir, path)
		return filepath.Join(hostDir, rel)
	}
	p.WorkingDir = move(p.WorkingDir)
	for i, f := range p.ComposeFiles {
		p.ComposeFiles[i] = move(f)
	}
	for name, s := range p.Services {
		vols := make([]types.ServiceVolumeConfig, len(s.Volumes))
		for i, v := range s.Volumes {
			if v.Type == types.VolumeTypeBind {
				v.Source = move(v.Source)
			}
			vols[i] = v
		}
		s.Volumes = vols
		p.Services[name] = s
	}
	for name, sec := range p.Secrets {
		sec.File = move(sec.File)
		p.Secrets[name] = sec
	}
	for name, c := range p.Configs {
		c.File = move(c.File)
		p.Configs[name] = c
	}
	return nil
}
