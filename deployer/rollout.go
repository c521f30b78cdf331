package deployer

import (
	"fmt"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/container"
)

// Defaults of the rollout settings, used when Options leave them zero.
const (
	DefaultKeepImages = 2
	DefaultRetryFor   = 10 * time.Minute
)

// StartFirstProblem says why a service that asks for deploy.update_config.order: start-first
// cannot have it, or "" when it can (or does not ask). Two containers of one replica cannot
// run side by side when they would need the same fixed host port or the same container_name;
// berth then stops the old one first, as compose does, and `berth check` reports this.
func StartFirstProblem(s types.ServiceConfig) string {
	if !wantsStartFirst(s) {
		return ""
	}
	if s.ContainerName != "" {
		return fmt.Sprintf("service %s sets container_name %s, which two containers cannot share; start-first falls back to stop-first", s.Name, s.ContainerName)
	}
	for _, p := range s.Ports {
		if p.Published != "" && p.Published != "0" {
			return fmt.Sprintf("service %s publishes fixed host port %s, which two containers cannot bind; start-first falls back to stop-first "+
				"(publish an ephemeral port or put a reverse proxy in front)", s.Name, p.Published)
		}
	}
	return ""
}

func wantsStartFirst(s types.ServiceConfig) bool {
	return s.Deploy != nil && s.Deploy.UpdateConfig != nil && s.Deploy.UpdateConfig.Order == "start-first"
}

// upToDate says whether every replica of the service already runs imageID with the config
// hash berth would give it: a redelivered push then changes nothing.
func upToDate(existing []container.Summary, replicas int, imageID, hash string) bool {
	if len(existing) != replicas {
		return false
	}
	for _, c := range existing {
		if c.ImageID != imageID || c.Labels[compose.LabelConfigHash] != hash || c.State != container.StateRunning {
			return false
		}
	}
	return true
}
