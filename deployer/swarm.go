package deployer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/swarm"
	"github.com/moby/moby/client"
)

// Backends berth can deploy through (BACKEND).
const (
	BackendAuto    = "auto"    // compose projects, plus stack services when the engine is a swarm manager
	BackendCompose = "compose" // compose projects only; swarm services are never touched
	BackendSwarm   = "swarm"   // swarm services only, stack or not; compose projects are not consulted
)

// labelStack is the label `docker stack deploy` puts on every service of a stack.
const labelStack = "com.docker.stack.namespace"

// labelSwarmService is the label the swarm puts on every task container: berth reads its own.
const labelSwarmService = "com.docker.swarm.service.id"

// defaultSwarmTimeout bounds how long berth waits for a service update (and its rollback) to converge.
const defaultSwarmTimeout = 5 * time.Minute

// managerTTL is how old the engine's last answer to "is this a swarm manager" may get before a
// push has it refreshed: an engine joins or leaves a swarm rarely, and asking on every push
// put an engine round trip (tens of ms on a busy engine) in front of every 202.
const managerTTL = 15 * time.Second

// swarmPoll is how often berth looks at a service while it converges.
const swarmPoll = 250 * time.Millisecond

// swarmEngine lists the Engine calls of the swarm backend; *client.Client satisfies it.
type swarmEngine interface {
	Info(ctx context.Context, opts client.InfoOptions) (client.SystemInfoResult, error)
	ServiceList(ctx context.Context, opts client.ServiceListOptions) (client.ServiceListResult, error)
	ServiceInspect(ctx context.Context, id string, opts client.ServiceInspectOptions) (client.ServiceInspectResult, error)
	ServiceUpdate(ctx context.Context, id string, opts client.ServiceUpdateOptions) (client.ServiceUpdateResult, error)
	TaskList(ctx context.Context, opts client.TaskListOptions) (client.TaskListResult, error)
	DistributionInspect(ctx context.Context, ref string, opts client.DistributionInspectOptions) (client.DistributionInspectResult, error)
}

// RegistryAuth gives the X-Registry-Auth value (base64 JSON) for a registry host such as
// docker.io or ghcr.io, or "" when berth has no credentials for it.
type RegistryAuth func(host string) string

// SwarmService is one swarm service as `berth check` and `berth status` show it.
type SwarmService struct {
	ID            string `json:"id"`
	Name          string `json:"name"`            // the swarm's name: stack_service
	Stack         string `json:"stack,omitempty"` // com.docker.stack.namespace; "" outside a stack
	Image         string `json:"image"`           // the repository:tag it follows; "" when pinned by digest alone
	Digest        string `json:"digest,omitempty"`
	Running       uint64 `json:"running"`
	Desired       uint64 `json:"desired"`
	UpdateState   string `json:"update_state,omitempty"` // updating, completed, paused, rollback_…; "" before any update
	UpdateMessage string `json:"update_message,omitempty"`
	Tracked       bool   `json:"tracked"` // berth updates it when its image is pushed
	Reason        string `json:"reason,omitempty"`
}

// SwarmManager says whether the engine is a manager of an active swarm, the only place
// services can be updated from.
func (d *Deployer) SwarmManager(ctx context.Context) (bool, error) {
	res, err := d.eng.Info(ctx, client.InfoOptions{})
	if err != nil {
		return false, unavailable("engine info", err)
	}
	s := res.Info.Swarm
	return s.LocalNodeState == swarm.LocalNodeStateActive && s.ControlAvailable, nil
}

// swarmLookups is what pushes share of their questions to the swarm (see swarmManagerRecent).
type swarmLookups struct {
	lists        *sharedCalls[[]swarm.Service]
	managerCalls *sharedCalls[bool]
	mu           sync.Mutex
	manager      bool
	answered     time.Time // when the engine last said whether it is a manager; zero before
	refreshing   bool
	ttl          time.Duration // managerTTL; tests shorten it
}

func newSwarmLookups() *swarmLookups {
	return &swarmLookups{lists: newSharedCalls[[]swarm.Service](), managerCalls: newSharedCalls[bool](), ttl: managerTTL}
}

// swarmManagerRecent is SwarmManager as a push asks it. The first push waits for the engine's
// answer (shared by the pushes that arrive with it); later pushes take the last answer at once,
// and an answer older than managerTTL is refreshed in the background, so no push waits on that
// round trip again. Failures are not remembered.
func (d *Deployer) swarmManagerRecent(ctx context.Context) (bool, error) {
	l := d.swarmLookups
	l.mu.Lock()
	known, is := !l.answered.IsZero(), l.manager
	if known && time.Since(l.answered) >= l.ttl && !l.refreshing {
		l.refreshing = true
		go func() {
			ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, _ = d.askSwarmManager(ctx)
		}()
	}
	l.mu.Unlock()
	if known {
		return is, nil
	}
	return d.askSwarmManager(ctx)
}

// askSwarmManager asks the engine and keeps the answer for swarmManagerRecent.
func (d *Deployer) askSwarmManager(ctx context.Context) (bool, error) {
	l := d.swarmLookups
	is, err := l.managerCalls.do(ctx, "", d.SwarmManager)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refreshing = false
	if err == nil {
		l.manager, l.answered = is, time.Now()
	}
	return is, err
}

// Warm asks the engine now what the first push would otherwise wait for (whether it is a swarm
// manager), so that push is answered without an engine round trip. Failures are left for the
// push to meet and report.
func (d *Deployer) Warm(ctx context.Context) {
	if d.backend != BackendCompose {
		_, _ = d.askSwarmManager(ctx)
	}
}

// SwarmServices lists the engine's swarm services with their image, digest, replicas and
// update state, and whether berth follows them. It is empty when the engine is no swarm
// manager or BACKEND=compose.
func (d *Deployer) SwarmServices(ctx context.Context) ([]SwarmService, error) {
	if d.backend == BackendCompose {
		return nil, nil
	}
	manager, err := d.SwarmManager(ctx)
	if err != nil || !manager {
		return nil, err
	}
	res, err := d.eng.ServiceList(ctx, client.ServiceListOptions{Status: true})
	if err != nil {
		return nil, unavailable("list swarm services", err)
	}
	var out []SwarmService
	for _, svc := range res.Items {
		s := SwarmService{ID: svc.ID, Name: svc.Spec.Name, Stack: svc.Spec.Labels[labelStack]}
		if svc.ServiceStatus != nil {
			s.Running, s.Desired = svc.ServiceStatus.RunningTasks, svc.ServiceStatus.DesiredTasks
		}
		if u := svc.UpdateStatus; u != nil {
			s.UpdateState, s.UpdateMessage = string(u.State), u.Message
		}
		ref, ok := serviceImage(svc)
		if ok {
			s.Digest = ref.Digest
			if ref.Tag != "" {
				s.Image = imageRef{Name: ref.Name, Tag: ref.Tag}.Familiar()
			}
		}
		s.Reason = d.swarmSkipReason(svc, ref, ok)
		s.Tracked = s.Reason == ""
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b SwarmService) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// swarmSkipReason says why berth does not follow svc, or "" when it does.
func (d *Deployer) swarmSkipReason(svc swarm.Service, ref imageRef, ok bool) string {
	stack := svc.Spec.Labels[labelStack]
	switch {
	case !ok:
		return "not a container service, or its image is no valid reference"
	case ref.Tag == "":
		return "pinned by digest alone: it follows no tag"
	case stack == "" && d.backend != BackendSwarm:
		return "not part of a stack; set BACKEND=swarm to follow every service"
	case !d.filter.allows(cmp.Or(stack, svc.Spec.Name)):
		return "not allowed by PROJECTS/SKIP_PROJECTS"
	case d.self.isSelfService(svc, ref):
		return "runs berth itself (or its socket proxy)"
	}
	return ""
}

// serviceImage is the image a container service runs, as its spec names it (a stack pins
// repository:tag@digest).
func serviceImage(svc swarm.Service) (imageRef, bool) {
	cs := svc.Spec.TaskTemplate.ContainerSpec
	if cs == nil {
		return imageRef{}, false
	}
	ref, err := parseImageRef(cs.Image)
	return ref, err == nil
}

// swarmJobs finds the swarm services that follow pushed. In auto mode only a swarm manager's
// stack services count; BACKEND=swarm takes every service and needs a manager.
func (d *Deployer) swarmJobs(ctx context.Context, t *Ticket, req Request, pushed imageRef) (jobs []job, skipped []string, err error) {
	if d.backend == BackendCompose {
		return nil, nil, nil
	}
	manager, err := d.swarmManagerRecent(ctx)
	if err != nil {
		if d.backend == BackendSwarm {
			return nil, nil, err
		}
		d.log.Warn("cannot tell whether the engine is a swarm manager; swarm services skipped", "err", err)
		return nil, nil, nil
	}
	if !manager {
		if d.backend == BackendSwarm {
			return nil, nil, fault.Errorf(fault.Unavailable, "BACKEND=swarm but the engine is not a swarm manager; point DOCKER_HOST at a manager node "+
				"(run berth with a placement constraint node.role == manager)")
		}
		return nil, nil, nil
	}
	services, err := d.swarmLookups.lists.do(ctx, "", func(ctx context.Context) ([]swarm.Service, error) {
		opts := client.ServiceListOptions{}
		if d.backend != BackendSwarm {
			opts.Filters = client.Filters{}.Add("label", labelStack)
		}
		res, err := d.eng.ServiceList(ctx, opts)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(res.Items, func(a, b swarm.Service) int { return cmp.Compare(a.Spec.Name, b.Spec.Name) })
		return res.Items, nil
	})
	if err != nil && d.backend == BackendSwarm {
		return nil, nil, unavailable("list swarm services", err)
	}
	if err != nil {
		// A socket proxy without SOCKET_PROXY_SWARM=true refuses the call; compose deploys go on.
		d.log.Warn("cannot list swarm services; swarm services skipped", "err", err)
		return nil, nil, nil
	}
	for _, svc := range services {
		ref, ok := serviceImage(svc)
		if !ok || !tracksTag(imageRef{Name: ref.Name, Tag: ref.Tag}, pushed) {
			continue
		}
		stack, short := stackService(svc)
		key := cmp.Or(stack, "swarm") + "/" + short
		switch reason := d.swarmSkipReason(svc, ref, ok); {
		case reason == "":
		case d.self.isSelfService(svc, ref):
			skipped = append(skipped, key)
			continue
		default:
			d.log.Debug("swarm service skipped", "service", svc.Spec.Name, "reason", reason)
			continue
		}
		jobs = append(jobs, job{id: t.ID, req: req, image: pushed, projectName: stack, service: short, swarmService: svc.ID})
		t.Services = append(t.Services, key)
	}
	return jobs, skipped, nil
}

// stackService splits a service's name into its stack and the name the stack file gives it.
func stackService(svc swarm.Service) (stack, short string) {
	stack = svc.Spec.Labels[labelStack]
	if stack == "" {
		return "", svc.Spec.Name
	}
	return stack, strings.TrimPrefix(svc.Spec.Name, stack+"_")
}

// isSelfService says whether svc runs berth: berth's own service, or a service of berth's
// stack on berth's image (the socket proxy).
func (s Self) isSelfService(svc swarm.Service, ref imageRef) bool {
	if s.SwarmService == "" {
		return false
	}
	if svc.ID == s.SwarmService {
		return true
	}
	return s.Stack != "" && svc.Spec.Labels[labelStack] == s.Stack && s.Image.Name != "" && ref.Name == s.Image.Name
}

// updateService moves a swarm service to the pushed image, pinned by digest, and waits for the
// swarm to converge. The swarm applies the service's own update_config; on failure berth lets
// (or asks) the swarm roll back to the previous spec.
func (d *Deployer) updateService(ctx context.Context, log *slog.Logger, j job, rec *Record) (string, error) {
	svc, err := d.inspectService(ctx, j.swarmService)
	if err != nil {
		return OutcomeFailed, err
	}
	cur, ok := serviceImage(svc)
	if !ok || !tracksTag(imageRef{Name: cur.Name, Tag: cur.Tag}, j.image) {
		return OutcomeFailed, fault.Errorf(fault.Conflict, "swarm service %s no longer runs %s; nothing updated", svc.Spec.Name, j.image.Familiar())
	}
	auth := d.auth(j.image)
	digest := j.req.Digest
	if digest == "" {
		at := time.Now()
		res, err := d.eng.DistributionInspect(ctx, j.image.String(), client.DistributionInspectOptions{EncodedRegistryAuth: auth})
		addStep(rec, "resolve", "", at, err)
		if err != nil && auth == "" {
			return OutcomeFailed, unavailable("resolve the digest of "+j.image.Familiar()+
				" (berth has no credentials for its registry; if it needs some, set REGISTRY_AUTH_CONFIG)", err)
		}
		if err != nil {
			return OutcomeFailed, unavailable("resolve the digest of "+j.image.Familiar(), err)
		}
		digest = res.Descriptor.Digest.String()
	}
	rec.Digest = digest
	state := updateState(svc)
	if cur.Digest == digest {
		switch state {
		case "", swarm.UpdateStateCompleted:
			log.Info("swarm service already runs the pushed digest; nothing to do", "digest", digest)
			return OutcomeUpToDate, nil
		case swarm.UpdateStateUpdating, swarm.UpdateStatePaused:
			// A redelivery while (or after) this very update ran: follow it instead of starting another.
			log.Info("swarm service is already being updated to the pushed digest; waiting for it", "digest", digest, "state", state)
			return d.settle(ctx, log, rec, svc.ID)
		}
	}
	key := cmp.Or(j.projectName, "swarm") + "/" + j.service
	if f, failed := d.failedBefore(key, digest); failed && !d.force {
		return OutcomeSkipped, fault.Errorf(fault.Conflict, "%s (%s) was rolled back on this service at %s (%s); berth does not try it again: "+
			"push a fixed image, or run `docker service update --image %s@%s %s` on a manager to try this one anyway",
			digest, j.image.Familiar(), f.At.Format(time.RFC3339), f.Reason, j.image.Familiar(), digest, svc.Spec.Name)
	}
	target, err := pinnedFamiliar(j.image, digest)
	if err != nil {
		return OutcomeFailed, err
	}
	spec := svc.Spec
	from := spec.TaskTemplate.ContainerSpec.Image
	cs := *spec.TaskTemplate.ContainerSpec
	cs.Image = target
	spec.TaskTemplate.ContainerSpec = &cs
	opts := client.ServiceUpdateOptions{Version: svc.Version, Spec: spec, EncodedRegistryAuth: auth}
	if auth == "" {
		// Keep the credentials the service was deployed with (docker stack deploy --with-registry-auth).
		opts.RegistryAuthFrom = swarm.RegistryAuthFromSpec
	}
	log.Info("update swarm service", "swarm_service", svc.Spec.Name, "target", target, "from", from, "version", svc.Version.Index)
	at := time.Now()
	res, err := d.eng.ServiceUpdate(ctx, svc.ID, opts)
	addStep(rec, "update", "", at, err)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("update swarm service %s to %s: %w", svc.Spec.Name, target, err)
	}
	for _, w := range res.Warnings {
		log.Warn("swarm service update", "warning", w)
	}
	outcome, err := d.settle(ctx, log, rec, svc.ID)
	switch outcome {
	case OutcomeRolledBack:
		d.markFailed(log, key, digest, err)
	case OutcomeDeployed:
		d.forgetFailed(log, key, digest)
	}
	return outcome, err
}

// settle waits for an update to converge; a failed update is rolled back by the swarm, on its
// own when update_config.failure_action is rollback, at berth's request otherwise.
func (d *Deployer) settle(ctx context.Context, log *slog.Logger, rec *Record, id string) (string, error) {
	at := time.Now()
	waitCtx, cancel := context.WithTimeout(ctx, d.swarmTimeout)
	defer cancel()
	result, why, err := d.converge(waitCtx, id)
	addStep(rec, "converge", "", at, err)
	switch {
	case err == nil && result == convergedUpdate:
		log.Info("swarm service converged on the new image")
		return OutcomeDeployed, nil
	case err == nil && result == convergedRollback:
		// The swarm rolled back by itself (failure_action: rollback).
		return d.confirmRollback(ctx, log, rec, id, fault.Errorf(fault.Internal, "the update failed and the swarm rolled it back: %s", cmp.Or(why, "no reason given")))
	}
	if ctx.Err() != nil {
		return OutcomeFailed, ctx.Err()
	}
	log.Error("swarm service update failed; rolling back", "err", err)
	at = time.Now()
	rbErr := d.requestRollback(context.WithoutCancel(ctx), id)
	addStep(rec, "rollback", "", at, rbErr)
	if rbErr != nil {
		return OutcomeFailed, fmt.Errorf("%w; and the rollback could not start: %v", err, rbErr)
	}
	return d.confirmRollback(ctx, log, rec, id, err)
}

// confirmRollback waits for a rollback to finish with the previous version running again.
func (d *Deployer) confirmRollback(ctx context.Context, log *slog.Logger, rec *Record, id string, cause error) (string, error) {
	waitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.swarmTimeout)
	defer cancel()
	at := time.Now()
	result, _, err := d.converge(waitCtx, id)
	addStep(rec, "rolled back", "", at, err)
	if err != nil || result != convergedRollback {
		return OutcomeFailed, fmt.Errorf("%w; the rollback did not converge either: %v", cause, cmp.Or[error](err, fmt.Errorf("state %s", result)))
	}
	log.Warn("swarm service rolled back to its previous version", "cause", cause)
	return OutcomeRolledBack, cause
}

// requestRollback asks the swarm to go back to the service's previous spec, unless it
// already is rolling back.
func (d *Deployer) requestRollback(ctx context.Context, id string) error {
	svc, err := d.inspectService(ctx, id)
	if err != nil {
		return err
	}
	switch updateState(svc) {
	case swarm.UpdateStateRollbackStarted, swarm.UpdateStateRollbackCompleted:
		return nil
	}
	if svc.PreviousSpec == nil {
		return fault.Errorf(fault.Conflict, "swarm service %s has no previous version to roll back to", svc.Spec.Name)
	}
	_, err = d.eng.ServiceUpdate(ctx, svc.ID, client.ServiceUpdateOptions{Version: svc.Version, Spec: svc.Spec, Rollback: "previous"})
	return err
}

// convergence is how a wait for a service ended.
type convergence string

const (
	convergedUpdate   convergence = "updated"     // the update completed and every task runs the new spec
	convergedRollback convergence = "rolled back" // a rollback completed and every task runs the previous spec
)

// converge polls the service until its update (or rollback) completes with every desired task
// running its spec's image, or fails. why is the swarm's reason for a rollback it started. Tasks with a healthcheck count as running only once healthy:
// the swarm keeps them "starting" until then.
func (d *Deployer) converge(ctx context.Context, id string) (_ convergence, why string, _ error) {
	tick := time.NewTicker(swarmPoll)
	defer tick.Stop()
	for {
		svc, err := d.inspectService(ctx, id)
		if err != nil {
			return "", why, err
		}
		msg := ""
		if svc.UpdateStatus != nil {
			msg = svc.UpdateStatus.Message
		}
		switch state := updateState(svc); state {
		case swarm.UpdateStateRollbackStarted:
			why = msg
		case swarm.UpdateStatePaused:
			return "", why, fault.Errorf(fault.Internal, "the swarm paused the update: %s", msg)
		case swarm.UpdateStateRollbackPaused:
			return "", why, fault.Errorf(fault.Internal, "the swarm paused the rollback: %s", msg)
		case swarm.UpdateStateCompleted, swarm.UpdateStateRollbackCompleted:
			done, failed, err := d.tasksConverged(ctx, svc)
			switch {
			case err != nil:
				return "", why, err
			case failed != "" && state == swarm.UpdateStateCompleted:
				// failure_action: continue lets the update complete over failing tasks.
				return "", why, fault.Errorf(fault.Internal, "a task of the new version failed: %s", failed)
			case done && state == swarm.UpdateStateCompleted:
				return convergedUpdate, why, nil
			case done:
				return convergedRollback, why, nil
			}
		}
		select {
		case <-ctx.Done():
			return "", why, fault.Errorf(fault.Unavailable, "swarm service %s did not converge in time (%s): %w", svc.Spec.Name, cmp.Or(msg, "no update status"), ctx.Err())
		case <-tick.C:
		}
	}
}

// tasksConverged says whether every task the service wants runs its spec's image, and names
// a task of that image that failed, if any.
func (d *Deployer) tasksConverged(ctx context.Context, svc swarm.Service) (done bool, failed string, err error) {
	res, err := d.eng.TaskList(ctx, client.TaskListOptions{Filters: client.Filters{}.Add("service", svc.ID)})
	if err != nil {
		return false, "", unavailable("list tasks of "+svc.Spec.Name, err)
	}
	want := svc.Spec.TaskTemplate.ContainerSpec.Image
	running := 0
	done = true
	for _, t := range res.Items {
		image := ""
		if t.Spec.ContainerSpec != nil {
			image = t.Spec.ContainerSpec.Image
		}
		if image == want && (t.Status.State == swarm.TaskStateFailed || t.Status.State == swarm.TaskStateRejected) && failed == "" {
			failed = fmt.Sprintf("task %s.%d: %s %s", svc.Spec.Name, t.Slot, t.Status.State, cmp.Or(t.Status.Err, t.Status.Message))
		}
		if t.DesiredState != swarm.TaskStateRunning {
			continue
		}
		if image != want || t.Status.State != swarm.TaskStateRunning {
			done = false
			continue
		}
		running++
	}
	if m := svc.Spec.Mode.Replicated; m != nil && m.Replicas != nil && uint64(running) != *m.Replicas {
		done = false
	}
	return done, failed, nil
}

func (d *Deployer) inspectService(ctx context.Context, id string) (swarm.Service, error) {
	res, err := d.eng.ServiceInspect(ctx, id, client.ServiceInspectOptions{})
	if err != nil {
		return swarm.Service{}, unavailable("inspect swarm service "+id, err)
	}
	if res.Service.Spec.TaskTemplate.ContainerSpec == nil {
		return swarm.Service{}, fault.Errorf(fault.Invalid, "swarm service %s runs no containers", res.Service.Spec.Name)
	}
	return res.Service, nil
}

func updateState(svc swarm.Service) swarm.UpdateState {
	if svc.UpdateStatus == nil {
		return ""
	}
	return svc.UpdateStatus.State
}

// pinnedFamiliar is repository:tag@digest in the short form `docker stack deploy` writes.
func pinnedFamiliar(ref imageRef, digest string) (string, error) {
	pinned, err := reference.ParseNormalizedNamed(imageRef{Name: ref.Name, Tag: ref.Tag}.String() + "@" + digest)
	if err != nil {
		return "", fault.Errorf(fault.Invalid, "pushed digest %q is not a valid digest: %w", digest, err)
	}
	return reference.FamiliarString(pinned), nil
}

// auth is the X-Registry-Auth value for ref's registry, "" when berth has none.
func (d *Deployer) auth(ref imageRef) string {
	if d.registryAuth == nil {
		return ""
	}
	return d.registryAuth(reference.Domain(mustNamed(ref.Name)))
}

// addStep appends one step to rec.
func addStep(rec *Record, name, target string, at time.Time, err error) {
	s := Step{Name: name, Container: target, At: at, Took: time.Since(at)}
	if err != nil {
		s.Error = err.Error()
	}
	rec.Steps = append(rec.Steps, s)
}
