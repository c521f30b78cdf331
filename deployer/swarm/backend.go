// Package swarm is berth's swarm backend: it finds the swarm services that follow a pushed
// tag and moves one to the pushed digest, letting the swarm roll it out under the service's
// own update_config, and roll it back on failure. It reports what it did as a Result; the
// deployer turns that into its Record. It imports neither the deployer nor compose.
package swarm

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/shared"
	swarmapi "github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// LabelStack is the label `docker stack deploy` puts on every service of a stack.
const LabelStack = "com.docker.stack.namespace"

// LabelService is the label the swarm puts on every task container: berth reads its own.
const LabelService = "com.docker.swarm.service.id"

// defaultTimeout bounds how long berth waits for a service update (and its rollback) to converge.
const defaultTimeout = 5 * time.Minute

// defaultRegistryTimeout bounds a digest lookup in the registry when Options leave it zero.
const defaultRegistryTimeout = 30 * time.Second

// managerTTL is how old the engine's last answer to "is this a swarm manager" may get before a
// push has it refreshed: an engine joins or leaves a swarm rarely, and asking on every push
// put an engine round trip (tens of ms on a busy engine) in front of every 202.
const managerTTL = 15 * time.Second

// poll is how often berth looks at a service while it converges.
const poll = 250 * time.Millisecond

// Services are the engine calls that read and update swarm services.
type Services interface {
	ServiceList(ctx context.Context, opts client.ServiceListOptions) (client.ServiceListResult, error)
	ServiceInspect(ctx context.Context, id string, opts client.ServiceInspectOptions) (client.ServiceInspectResult, error)
	ServiceUpdate(ctx context.Context, id string, opts client.ServiceUpdateOptions) (client.ServiceUpdateResult, error)
	TaskList(ctx context.Context, opts client.TaskListOptions) (client.TaskListResult, error)
}

// Engine is every engine call of the swarm backend; *client.Client satisfies it. Besides the
// service calls it asks whether the engine is a swarm manager and which digest a tag names.
type Engine interface {
	Services
	Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error)
	DistributionInspect(ctx context.Context, ref string, opts client.DistributionInspectOptions) (client.DistributionInspectResult, error)
}

// Options configure a Backend.
type Options struct {
	// All takes every service, stack or not, and needs the engine to be a manager (BACKEND=swarm);
	// otherwise only stack services count, and only when the engine is a manager (BACKEND=auto).
	All bool
	// Allowed says whether berth may touch a stack (a service's name outside a stack);
	// PROJECTS/SKIP_PROJECTS. Nil allows every one.
	Allowed func(project string) bool
	Self    Self          // berth's own service, never updated
	Timeout time.Duration // bounds the wait for an update, and again for its rollback; default 5m
	// RegistryTimeout bounds the registry lookup of a pushed tag's digest (REGISTRY_TIMEOUT);
	// default 30s. Shutdown, when it ends, ends that lookup too: nothing was changed yet.
	RegistryTimeout time.Duration
	Shutdown        context.Context
	Logger          *slog.Logger
}

// Self is the swarm service berth runs as, learned from its container's labels.
type Self struct {
	Service string // berth's service id; "" outside swarm
	Stack   string // berth's stack; "" outside one
	Image   string // the repository of berth's image, fully qualified
}

// runs says whether svc runs berth: berth's own service, or a service of berth's stack on
// berth's image (the socket proxy).
func (s Self) runs(svc swarmapi.Service, ref registry.Ref) bool {
	if s.Service == "" {
		return false
	}
	if svc.ID == s.Service {
		return true
	}
	return s.Stack != "" && svc.Spec.Labels[LabelStack] == s.Stack && s.Image != "" && ref.Name == s.Image
}

// Backend updates swarm services through the engine. Pushes share its questions to the
// engine: whether it is a manager (see managerRecent) and the service list.
type Backend struct {
	eng  Engine
	opts Options

	lists        *shared.Calls[[]swarmapi.Service]
	managerCalls *shared.Calls[bool]
	mu           sync.Mutex
	manager      bool
	answered     time.Time // when the engine last said whether it is a manager; zero before
	refreshing   bool
	ttl          time.Duration // managerTTL; tests shorten it
}

// New returns a Backend that talks to the engine through eng.
func New(eng Engine, o Options) *Backend {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Allowed == nil {
		o.Allowed = func(string) bool { return true }
	}
	o.Timeout = cmp.Or(o.Timeout, defaultTimeout)
	o.RegistryTimeout = cmp.Or(o.RegistryTimeout, defaultRegistryTimeout)
	o.Shutdown = cmp.Or(o.Shutdown, context.Background())
	return &Backend{eng: eng, opts: o, lists: shared.NewCalls[[]swarmapi.Service](), managerCalls: shared.NewCalls[bool](), ttl: managerTTL}
}

// Manager says whether the engine is a manager of an active swarm, the only place services
// can be updated from.
func (b *Backend) Manager(ctx context.Context) (bool, error) {
	res, err := b.eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, unavailable("engine info", err)
	}
	s := res.Info.Swarm
	return s.LocalNodeState == swarmapi.LocalNodeStateActive && s.ControlAvailable, nil
}

// managerRecent is Manager as a push asks it. The first push waits for the engine's answer
// (shared by the pushes that arrive with it); later pushes take the last answer at once, and
// an answer older than managerTTL is refreshed in the background, so no push waits on that
// round trip again. Failures are not remembered.
func (b *Backend) managerRecent(ctx context.Context) (bool, error) {
	b.mu.Lock()
	known, is := !b.answered.IsZero(), b.manager
	if known && time.Since(b.answered) >= b.ttl && !b.refreshing {
		b.refreshing = true
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, _ = b.askManager(ctx)
		}()
	}
	b.mu.Unlock()
	if known {
		return is, nil
	}
	return b.askManager(ctx)
}

// askManager asks the engine and keeps the answer for managerRecent.
func (b *Backend) askManager(ctx context.Context) (bool, error) {
	is, err := b.managerCalls.Do(ctx, "", b.Manager)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refreshing = false
	if err == nil {
		b.manager, b.answered = is, time.Now()
	}
	return is, err
}

// Warm asks the engine now what the first push would otherwise wait for (whether it is a swarm
// manager), so that push is answered without an engine round trip. Failures are left for the
// push to meet and report.
func (b *Backend) Warm(ctx context.Context) { _, _ = b.askManager(ctx) }

// Target is a swarm service that follows a pushed image.
type Target struct {
	ID      string // the service's id
	Stack   string // its stack; "" outside one
	Service string // the name the stack file gives it; the swarm's name outside a stack
}

// Key names the service the way tickets and records do: stack/service, swarm/service outside a stack.
func (t Target) Key() string { return cmp.Or(t.Stack, "swarm") + "/" + t.Service }

// Find lists the services that follow pushed (repository and tag), and the keys of those that
// run berth itself, which it leaves alone. Unless Options.All, an engine that is no manager,
// or that cannot say, has none.
func (b *Backend) Find(ctx context.Context, pushed registry.Ref) (targets []Target, self []string, err error) {
	services, err := b.services(ctx)
	if err != nil {
		return nil, nil, err
	}
	for _, svc := range services {
		ref, ok := serviceImage(svc)
		if !ok || !registry.TracksTag(registry.Ref{Name: ref.Name, Tag: ref.Tag}, pushed) {
			continue
		}
		stack, short := stackService(svc)
		t := Target{ID: svc.ID, Stack: stack, Service: short}
		switch reason := b.skipReason(svc, ref, ok); {
		case reason == "":
		case b.opts.Self.runs(svc, ref):
			self = append(self, t.Key())
			continue
		default:
			b.opts.Logger.Debug("swarm service skipped", "service", svc.Spec.Name, "reason", reason)
			continue
		}
		targets = append(targets, t)
	}
	return targets, self, nil
}

// services lists the services berth may consider: none, unless Options.All, when the engine is
// no manager or cannot say, or refuses the list.
func (b *Backend) services(ctx context.Context) ([]swarmapi.Service, error) {
	manager, err := b.managerRecent(ctx)
	if err != nil {
		if b.opts.All {
			return nil, err
		}
		b.opts.Logger.Warn("cannot tell whether the engine is a swarm manager; swarm services skipped", "err", err)
		return nil, nil
	}
	if !manager {
		if b.opts.All {
			return nil, fault.Errorf(fault.Unavailable, "BACKEND=swarm but the engine is not a swarm manager; point DOCKER_HOST at a manager node "+
				"(run berth with a placement constraint node.role == manager)")
		}
		return nil, nil
	}
	services, err := b.lists.Do(ctx, "", b.list)
	if err != nil && b.opts.All {
		return nil, unavailable("list swarm services", err)
	}
	if err != nil {
		// A socket proxy without SOCKET_PROXY_SWARM=true refuses the call; compose deploys go on.
		b.opts.Logger.Warn("cannot list swarm services; swarm services skipped", "err", err)
		return nil, nil
	}
	return services, nil
}

// Followed is a service berth follows, as watch mode reads it.
type Followed struct {
	Target
	Image  registry.Ref      // as its spec names it: a stack pins repository:tag@digest
	Labels map[string]string // the service spec's labels (a stack file's deploy.labels)
}

// Followed lists the services a push of their tag would update (berth's own left out).
func (b *Backend) Followed(ctx context.Context) ([]Followed, error) {
	services, err := b.services(ctx)
	if err != nil {
		return nil, err
	}
	var out []Followed
	for _, svc := range services {
		ref, ok := serviceImage(svc)
		if b.skipReason(svc, ref, ok) != "" {
			continue
		}
		stack, short := stackService(svc)
		out = append(out, Followed{Target: Target{ID: svc.ID, Stack: stack, Service: short}, Image: ref, Labels: svc.Spec.Labels})
	}
	return out, nil
}

// PinnedDigest is the digest service id's spec pins its image to ("" when it pins none): the
// one its tasks run once the swarm converged.
func (b *Backend) PinnedDigest(ctx context.Context, id string) (string, error) {
	res, err := b.eng.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return "", unavailable("inspect swarm service "+id, err)
	}
	ref, ok := serviceImage(res.Service)
	if !ok {
		return "", fault.Errorf(fault.Conflict, "swarm service %s no longer runs a valid image reference", res.Service.Spec.Name)
	}
	return ref.Digest, nil
}

// list lists the services berth may follow, sorted by name: stack services only, unless Options.All.
func (b *Backend) list(ctx context.Context) ([]swarmapi.Service, error) {
	opts := client.ServiceListOptions{}
	if !b.opts.All {
		opts.Filters = client.Filters{}.Add("label", LabelStack)
	}
	res, err := b.eng.ServiceList(ctx, opts)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(res.Items, func(a, b swarmapi.Service) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
	return res.Items, nil
}

// skipReason says why berth does not follow svc, or "" when it does.
func (b *Backend) skipReason(svc swarmapi.Service, ref registry.Ref, ok bool) string {
	stack := svc.Spec.Labels[LabelStack]
	switch {
	case !ok:
		return "not a container service, or its image is no valid reference"
	case ref.Tag == "":
		return "pinned by digest alone: it follows no tag"
	case stack == "" && !b.opts.All:
		return "not part of a stack; set BACKEND=swarm to follow every service"
	case !b.opts.Allowed(cmp.Or(stack, svc.Spec.Name)):
		return "not allowed by PROJECTS/SKIP_PROJECTS"
	case b.opts.Self.runs(svc, ref):
		return "runs berth itself (or its socket proxy)"
	}
	return ""
}

// serviceImage is the image a container service runs, as its spec names it (a stack pins
// repository:tag@digest).
func serviceImage(svc swarmapi.Service) (registry.Ref, bool) {
	cs := svc.Spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return registry.Ref{}, false
	}
	ref, err := registry.ParseRef(cs.Image)
	return ref, err == nil
}

// stackService splits a service's name into its stack and the name the stack file gives it.
func stackService(svc swarmapi.Service) (stack, short string) {
	stack = svc.Spec.Labels[LabelStack]
	if stack == "" {
		return "", svc.Spec.Name
	}
	return stack, strings.TrimPrefix(svc.Spec.Name, stack+"_")
}

// unavailable gives an engine failure the Unavailable kind; a cancelled call stays as it is.
func unavailable(what string, err error) error {
	if errors.Is(err, context.Canceled) {
		return err
	}
	return &fault.Error{Kind: fault.Unavailable, Msg: what + ": " + err.Error(), Err: err}
}
