package deployer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// serviceContainers lists the service's containers the way compose finds them, by label,
// ordered by replica number.
func (d *Deployer) serviceContainers(ctx context.Context, project, service string) ([]container.Summary, error) {
	f := client.Filters{}.Add("label", compose.LabelProject+"="+project, compose.LabelService+"="+service, compose.LabelOneoff+"=False")
	res, err := d.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, unavailable("list containers of "+service, err)
	}
	out := res.Items
	slices.SortFunc(out, func(a, b container.Summary) int {
		na, _ := strconv.Atoi(a.Labels[compose.LabelNumber])
		nb, _ := strconv.Atoi(b.Labels[compose.LabelNumber])
		return cmp.Compare(na, nb)
	})
	return out, nil
}

// create makes the container and attaches its secondary networks; on failure nothing is left.
func (d *Deployer) create(ctx context.Context, name string, spec compose.CreateSpec) (string, error) {
	res, err := d.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: name, Config: spec.Config, HostConfig: spec.Host, NetworkingConfig: spec.Network,
	})
	if err != nil {
		return "", fmt.Errorf("create container %s: %w", name, err)
	}
	for _, nw := range slices.Sorted(maps.Keys(spec.Secondary)) {
		if _, err := d.eng.NetworkConnect(ctx, nw, client.NetworkConnectOptions{Container: res.ID, EndpointConfig: spec.Secondary[nw]}); err != nil {
			d.discard(ctx, res.ID)
			return "", fmt.Errorf("connect %s to network %s: %w", name, nw, err)
		}
	}
	return res.ID, nil
}

// discard removes a container berth created and could not use; cleanup must not hide the
// original error, so its own failure is only logged.
func (d *Deployer) discard(ctx context.Context, id string) {
	if _, err := d.eng.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		d.log.Warn("remove unused container", "id", id, "err", err)
	}
}

func (d *Deployer) start(ctx context.Context, id, name string) error {
	if _, err := d.eng.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	return nil
}

func (d *Deployer) stop(ctx context.Context, id, name string) error {
	if _, err := d.eng.ContainerStop(ctx, id, client.ContainerStopOptions{}); err != nil {
		return fmt.Errorf("stop %s: %w", name, err)
	}
	return nil
}

func (d *Deployer) rename(ctx context.Context, id, from, to string) error {
	if _, err := d.eng.ContainerRename(ctx, id, client.ContainerRenameOptions{NewName: to}); err != nil {
		return fmt.Errorf("rename %s to %s: %w", from, to, err)
	}
	return nil
}

// leaveNetworks takes a container off its networks before it is stopped, so the engine's DNS
// stops naming it and clients reach only its replacement; failures only cost that grace.
func (d *Deployer) leaveNetworks(ctx context.Context, c container.Summary) {
	if c.NetworkSettings == nil {
		return
	}
	for _, nw := range slices.Sorted(maps.Keys(c.NetworkSettings.Networks)) {
		if _, err := d.eng.NetworkDisconnect(ctx, nw, client.NetworkDisconnectOptions{Container: c.ID}); err != nil {
			d.log.Warn("take old container off its network before stopping it", "container", canonicalName(c), "network", nw, "err", err)
		}
	}
}

// removeContainer stops and removes id; a container already gone is fine.
func (d *Deployer) removeContainer(ctx context.Context, id string) error {
	_, err := d.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove %s: %w", short(id), err)
	}
	return nil
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: what + ": " + err.Error(), Err: err}
}
