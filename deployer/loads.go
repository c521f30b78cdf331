package deployer

import (
	"context"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/shared"
	"github.com/compose-spec/compose-go/v2/types"
)

// projectLoads shares compose project loads between Deploy calls that arrive together.
type projectLoads struct {
	calls *shared.Calls[*types.Project]
	load  func(context.Context, compose.Spec) (*types.Project, error)
}

func newProjectLoads(load func(context.Context, compose.Spec) (*types.Project, error)) *projectLoads {
	return &projectLoads{calls: shared.NewCalls[*types.Project](), load: load}
}

// get returns spec's project from a load that started after this call. The caller must not
// modify the project: other calls hold it too.
func (l *projectLoads) get(ctx context.Context, spec compose.Spec) (*types.Project, error) {
	return l.calls.Do(ctx, spec.Key(), func(ctx context.Context) (*types.Project, error) {
		return l.load(ctx, spec)
	})
}
