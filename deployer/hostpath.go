package deployer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/moby/moby/client"
)

// containerIDInMountinfo finds the engine's per-container files (hostname, hosts, resolv.conf)
// among the mounts of a process running in a container; their path holds the container's id.
var containerIDInMountinfo = regexp.MustCompile(`/containers/([0-9a-f]{64})/(?:hostname|hosts|resolv\.conf)\s`)

// ownContainerID returns the id of the container this process runs in, read from mountinfo,
// or "" when it does not run in a container.
func ownContainerID(mountinfo io.Reader) string {
	sc := bufio.NewScanner(mountinfo)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		if m := containerIDInMountinfo.FindStringSubmatch(sc.Text() + " "); m != nil {
			return m[1]
		}
	}
	return ""
}

// inspectOwnContainer inspects the container berth runs in. found is false when berth is not
// in a container, or in one this engine does not run (then it shares the host's view of paths).
func inspectOwnContainer(ctx context.Context, eng Engine) (res client.ContainerInspectResult, found bool, err error) {
	id := ""
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		id = ownContainerID(f)
		f.Close()
	}
	if id != "" {
		if res, err = eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err != nil {
			return res, false, fmt.Errorf("berth runs in container %s but cannot inspect it (%w)", id[:12], err)
		}
		return res, true, nil
	}
	// Without the engine's files in mountinfo, berth is either not in a container or in
	// one this engine does not run; the hostname, the engine's default for its containers,
	// tells the two apart.
	if _, err := os.Stat("/.dockerenv"); err != nil {
		return res, false, nil
	}
	host, _ := os.Hostname()
	res, err = eng.ContainerInspect(ctx, host, client.ContainerInspectOptions{})
	if err != nil || host == "" || !strings.HasPrefix(res.Container.ID, host) {
		return res, false, nil
	}
	return res, true, nil
}

// DetectHostDirs fills in HostDir for every project whose directory berth sees through a
// mount of its own container, so that the paths compose writes (bind sources, the project's
// working_dir and config_files labels) are the host's, as if compose ran on the host. Outside a
// container, or for a HostDir already set (HOST_PROJECT_DIR), specs are returned unchanged.
func DetectHostDirs(ctx context.Context, eng Engine, specs []compose.Spec) ([]compose.Spec, error) {
	out := make([]compose.Spec, len(specs))
	copy(out, specs)
	need := false
	for _, s := range out {
		need = need || s.HostDir == ""
	}
	if !need {
		return out, nil
	}
	self, found, err := inspectOwnContainer(ctx, eng)
	if err != nil {
		return nil, fmt.Errorf("%w to learn the host path of its project directory; set HOST_PROJECT_DIR to that host path", err)
	}
	if !found {
		return out, nil
	}
	id := self.Container.ID
	for i, s := range out {
		if s.HostDir != "" {
			continue
		}
		dir, err := filepath.Abs(s.Dir)
		if err != nil {
			return nil, fmt.Errorf("project directory %s: %w", s.Dir, err)
		}
		best := ""
		for _, m := range self.Container.Mounts {
			if m.Source == "" || !compose.Within(dir, m.Destination) || len(m.Destination) <= len(best) {
				continue
			}
			best = m.Destination
			rel, _ := filepath.Rel(m.Destination, dir)
			out[i].HostDir = filepath.Join(m.Source, rel)
		}
		if best == "" {
			return nil, fmt.Errorf("project directory %s is not mounted from the host into berth's container %s; mount it (e.g. -v /srv/app:%s) or set HOST_PROJECT_DIR to its host path", dir, id[:min(12, len(id))], dir)
		}
	}
	return out, nil
}
