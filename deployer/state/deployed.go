package state

import (
	"fmt"
	"sync"
	"time"
)

// DeployedPush is the push a service last deployed, or found already running: a later
// delivery of the same tag pushed before it is stale (a re-sent webhook) and is not deployed.
type DeployedPush struct {
	Repository string    `json:"repository"`
	Tag        string    `json:"tag"`
	Digest     string    `json:"digest,omitempty"`
	PushedAt   time.Time `json:"pushed_at"` // the sender's clock
}

// DeployedPushes keeps, per service (project/service), its DeployedPush: in deployed.json
// when persistent, in memory otherwise.
type DeployedPushes struct {
	mu     sync.Mutex
	path   string // "" = memory only
	pushes map[string]DeployedPush
}

// DeployedPushes opens deployed.json, reading what an earlier berth left.
func (d Dir) DeployedPushes() (*DeployedPushes, error) {
	p := &DeployedPushes{pushes: map[string]DeployedPush{}}
	if !d.Persistent() {
		return p, nil
	}
	p.path = d.deployedFile()
	if _, err := readJSON(p.path, &p.pushes); err != nil {
		return nil, fmt.Errorf("deployed pushes %s: %w", p.path, err)
	}
	if p.pushes == nil { // the file held null
		p.pushes = map[string]DeployedPush{}
	}
	return p, nil
}

// Get returns the push service last deployed, if berth knows one.
func (p *DeployedPushes) Get(service string) (DeployedPush, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	dp, ok := p.pushes[service]
	return dp, ok
}

// Set records dp as the push service last deployed, replacing deployed.json atomically.
func (p *DeployedPushes) Set(service string, dp DeployedPush) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pushes[service] = dp
	if p.path == "" {
		return nil
	}
	if err := writeJSON(p.path, p.pushes); err != nil {
		return fmt.Errorf("deployed pushes %s: %w", p.path, err)
	}
	return nil
}
