package deployer

import (
	"context"

	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/hook"
	"github.com/berth-dev/berth/deployer/swarm"
	"github.com/moby/moby/client"
)

// Engine lists the Docker Engine calls the deployer makes; *client.Client satisfies it.
// Keeping it here, small, lets a test stand in for the faults a real engine cannot produce
// on demand, and shows at a glance what berth asks of the socket.
type Engine interface {
	ImagePull(ctx context.Context, ref string, opts client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageRemove(ctx context.Context, ref string, opts client.ImageRemoveOptions) (client.ImageRemoveResult, error)
	ImageTag(ctx context.Context, opts client.ImageTagOptions) (client.ImageTagResult, error)

	ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, opts client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerStop(ctx context.Context, id string, opts client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerRename(ctx context.Context, id string, opts client.ContainerRenameOptions) (client.ContainerRenameResult, error)
	gate.Engine   // the pre-deploy gate's throwaway container: create, start, wait, logs, remove
	health.Engine // the health wait: inspect
	hook.Engine   // the exec calls of lifecycle hooks; made only for services that declare one

	NetworkList(ctx context.Context, opts client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkCreate(ctx context.Context, name string, opts client.NetworkCreateOptions) (client.NetworkCreateResult, error)
	NetworkConnect(ctx context.Context, id string, opts client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkDisconnect(ctx context.Context, id string, opts client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)

	VolumeInspect(ctx context.Context, id string, opts client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	VolumeCreate(ctx context.Context, opts client.VolumeCreateOptions) (client.VolumeCreateResult, error)

	swarm.Engine // the swarm backend's calls (deployer/swarm)
}
