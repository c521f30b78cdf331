package command

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"
)

// negotiateAPI settles the Engine API version with the engine (berth's client speaks
// client.MinAPIVersion to client.MaxAPIVersion) and fails with a message saying what to upgrade
// when the two have no version in common. An engine that does not answer is not an error here:
// it may start later, and every engine call says so itself.
func negotiateAPI(ctx context.Context, docker *client.Client) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ping, err := docker.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	if err != nil {
		if ping.APIVersion != "" && versions.LessThan(ping.APIVersion, client.MinAPIVersion) {
			return fmt.Errorf("the engine at %s speaks Engine API up to %s; berth needs %s or newer (Docker Engine 19.03 or later): upgrade the engine",
				docker.DaemonHost(), ping.APIVersion, client.MinAPIVersion)
		}
		return nil
	}
	// Only the version endpoint reports the engine's minimum; asking it at the negotiated
	// version also proves the engine accepts that version (Engine 29.0 refused below 1.44).
	v, err := docker.ServerVersion(ctx, client.ServerVersionOptions{})
	tooNew := err == nil && v.MinAPIVersion != "" && versions.GreaterThan(v.MinAPIVersion, docker.ClientVersion())
	refused := err != nil && versions.GreaterThan(ping.APIVersion, client.MaxAPIVersion) && ctx.Err() == nil
	if !tooNew && !refused {
		return nil
	}
	why := fmt.Sprintf("its minimum is %s", v.MinAPIVersion)
	if err != nil {
		why = err.Error()
	}
	return errors.New("the engine at " + docker.DaemonHost() + " (Engine API " + ping.APIVersion + ") does not accept API " +
		docker.ClientVersion() + ", the newest this berth speaks (" + why + "): upgrade berth")
}
