package deployer

import (
	"context"
	"fmt"

	"github.com/berth-dev/berth/deployer/gate"
	cerrdefs "github.com/containerd/errdefs"
)

// runGate asks the service's pre-deploy gate (package gate) about the deploy. A veto is a
// *gate.Veto; the result is returned either way for the Record.
func (d *Deployer) runGate(ctx context.Context, g gate.Config, req gate.Request) (gate.Result, error) {
	return gate.Runner{Engine: d.eng, Image: d.gateImage, Log: d.log}.Run(ctx, g, req)
}

// gateImage pulls a gate image the engine does not have yet, with the registry credentials
// berth pulls services with; its error is the gate's reason to veto.
func (d *Deployer) gateImage(ctx context.Context, ref string) error {
	if _, err := d.eng.ImageInspect(ctx, ref); cerrdefs.IsNotFound(err) {
		if err := d.pull(ctx, ref); err != nil {
			return fmt.Errorf("gate image: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("gate image %s: %w", ref, err)
	}
	return nil
}
