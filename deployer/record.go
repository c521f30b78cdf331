package deployer

import (
	"time"

	"github.com/berth-dev/berth/deployer/gate"
)

// Outcomes a deploy can end with.
const (
	OutcomeDeployed   = "deployed"    // the service runs the pushed image
	OutcomeUpToDate   = "up-to-date"  // it already did; nothing was touched
	OutcomeFailed     = "failed"      // it could not be deployed; see Error
	OutcomeRolledBack = "rolled-back" // it failed and the previous version runs again
	OutcomeRejected   = "rejected"    // the pre-deploy gate vetoed it; nothing was stopped (see Gate)
)

// Record is what one service deploy did; every deploy ends with exactly one.
type Record struct {
	ID         string        `json:"id"`
	Project    string        `json:"project"`
	Service    string        `json:"service"`
	Source     string        `json:"source"`
	Repository string        `json:"repository"`
	Tag        string        `json:"tag"`
	Digest     string        `json:"digest,omitempty"`
	Pusher     string        `json:"pusher,omitempty"`
	PushedAt   time.Time     `json:"pushed_at,omitzero"`
	Started    time.Time     `json:"started"`
	Duration   time.Duration `json:"duration_ns"`
	Backend    string        `json:"backend,omitempty"` // "swarm" for a swarm service update; "" for compose
	Outcome    string        `json:"outcome"`
	Error      string        `json:"error,omitempty"`
	Steps      []Step        `json:"steps"`
	// ImageLabels are the pulled image's OCI version, revision and source labels.
	ImageLabels map[string]string `json:"image_labels,omitempty"`
	Gate        *gate.Result      `json:"gate,omitempty"` // what the pre-deploy gate said, when there is one
}

// Step is one engine action of a deploy, in order.
type Step struct {
	Name      string        `json:"name"` // pull, create, stop, remove, rename, start, …
	Container string        `json:"container,omitempty"`
	At        time.Time     `json:"at"`
	Took      time.Duration `json:"took_ns"`
	Error     string        `json:"error,omitempty"`
}
