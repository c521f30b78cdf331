package compose

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
)

// volumeSpecs splits the service's volumes the way compose does: plain binds and named volumes
// as Binds strings, everything needing options as Mounts. Anonymous volumes of the replaced
// container are mounted again by name so their data survives the recreate.
func volumeSpecs(p *types.Project, s types.ServiceConfig, imageVolumes map[string]struct{}, inherited []container.MountPoint) ([]string, []mount.Mount, error) {
	byTarget := map[string]mount.Mount{}
	volumes := s.Volumes
	for _, m := range inherited {
		if m.Type == mount.TypeTmpfs {
			continue
		}
		src := m.Source
		if m.Type == mount.TypeVolume {
			src = m.Name
		}
		inherit := mount.Mount{Type: m.Type, Source: src, Target: m.Destination, ReadOnly: !m.RW}
		if _, ok := imageVolumes[m.Destination]; ok {
			byTarget[m.Destination] = inherit
		}
		volumes = slices.DeleteFunc(slices.Clone(volumes), func(v types.ServiceVolumeConfig) bool {
			if v.Target == m.Destination && v.Source == "" {
				byTarget[m.Destination] = inherit
				return true
			}
			return false
		})
	}
	var binds []string
	var mounts []mount.Mount
	declared := map[string]*types.ServiceVolumeConfig{}
	for i := range volumes {
		v := volumes[i]
		declared[v.Target] = &volumes[i]
		m, err := serviceMount(p, v)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: %w", s.Name, err)
		}
		byTarget[v.Target] = m
	}
	// File-based secrets and configs are read-only binds, unless a volume already uses the target.
	for _, m := range secretAndConfigMounts(p, s) {
		if _, ok := byTarget[m.Target]; !ok {
			byTarget[m.Target] = m
		}
	}
	for _, target := range slices.Sorted(maps.Keys(byTarget)) {
		m := byTarget[target]
		if v := declared[target]; v != nil {
			switch {
			case m.Type == mount.TypeBind && !bindNeedsMountAPI(v.Bind):
				binds = append(binds, bindString(m.Source, v))
				continue
			case m.Type == mount.TypeVolume && v.Source != "" && !volumeNeedsMountAPI(v.Volume):
				binds = append(binds, bindString(m.Source, v))
				continue
			}
		}
		mounts = append(mounts, m)
	}
	return binds, mounts, nil
}

// secretAndConfigMounts are compose's binds for file-based secrets (under /run/secrets) and
// configs (under /); CheckSupported has refused every other kind.
func secretAndConfigMounts(p *types.Project, s types.ServiceConfig) []mount.Mount {
	var out []mount.Mount
	target := func(dir, source, target string) string {
		switch {
		case target == "":
			return dir + source
		case !strings.HasPrefix(target, "/"):
			return dir + target
		}
		return target
	}
	for _, ref := range s.Secrets {
		// compose asks for the Mount API with create_host_path off, hence the empty bind options.
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: absPath(p.Secrets[ref.Source].File), Target: target("/run/secrets/", ref.Source, ref.Target),
			ReadOnly: true, BindOptions: &mount.BindOptions{}})
	}
	for _, ref := range s.Configs {
		out = append(out, mount.Mount{Type: mount.TypeBind, Source: absPath(p.Configs[ref.Source].File), Target: target("/", ref.Source, ref.Target), ReadOnly: true})
	}
	return out
}

func absPath(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

func serviceMount(p *types.Project, v types.ServiceVolumeConfig) (mount.Mount, error) {
	m := mount.Mount{Type: mount.Type(v.Type), Source: v.Source, Target: v.Target, ReadOnly: v.ReadOnly, Consistency: mount.Consistency(v.Consistency)}
	switch v.Type {
	case types.VolumeTypeBind:
		if !filepath.IsAbs(v.Source) {
			return mount.Mount{}, fault.Errorf(fault.Invalid, "bind mount source %q is not absolute", v.Source)
		}
		if v.Bind != nil {
			m.BindOptions = &mount.BindOptions{Propagation: mount.Propagation(v.Bind.Propagation), CreateMountpoint: bool(v.Bind.CreateHostPath)}
			switch v.Bind.Recursive {
			case "disabled":
				m.BindOptions.NonRecursive = true
			case "writable":
				m.BindOptions.ReadOnlyNonRecursive = true
			case "readonly":
				m.BindOptions.ReadOnlyForceRecursive = true
			}
		}
	case types.VolumeTypeVolume:
		if v.Source != "" {
			vol, ok := p.Volumes[v.Source]
			if !ok {
				return mount.Mount{}, fault.Errorf(fault.Invalid, "volume %s is not defined in the project's volumes", v.Source)
			}
			m.Source = vol.Name
		}
		if v.Volume != nil {
			m.VolumeOptions = &mount.VolumeOptions{NoCopy: v.Volume.NoCopy, Subpath: v.Volume.Subpath, Labels: v.Volume.Labels}
		}
	case types.VolumeTypeTmpfs:
		if v.Tmpfs != nil {
			m.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: int64(v.Tmpfs.Size), Mode: fileMode(v.Tmpfs.Mode)}
		}
	}
	return m, nil
}

func bindNeedsMountAPI(b *types.ServiceVolumeBind) bool {
	return b != nil && (!bool(b.CreateHostPath) || b.Propagation != "" || b.Recursive != "")
}

func volumeNeedsMountAPI(v *types.ServiceVolumeVolume) bool {
	return v != nil && (len(v.Labels) > 0 || v.Subpath != "" || v.NoCopy)
}

// bindString is the legacy "src:dst:opts" form the Engine accepts in HostConfig.Binds.
func bindString(src string, v *types.ServiceVolumeConfig) string {
	opts := []string{"rw"}
	if v.ReadOnly {
		opts[0] = "ro"
	}
	if v.Bind != nil && v.Bind.SELinux != "" {
		opts = append(opts, v.Bind.SELinux)
	}
	if v.Bind != nil && v.Bind.Propagation != "" {
		opts = append(opts, v.Bind.Propagation)
	}
	if v.Volume != nil && v.Volume.NoCopy {
		opts = append(opts, "nocopy")
	}
	return src + ":" + v.Target + ":" + strings.Join(opts, ",")
}

func fileMode(m uint32) os.FileMode { return os.FileMode(m) }
