// Package deployer owns what a deploy is: find the compose services a push concerns, pull the
// pushed image, and recreate those services' containers exactly as docker compose would.
package deployer

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/gate"
	"github.com/berth-dev/berth/deployer/health"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/shared"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/berth-dev/berth/deployer/swarm"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/moby/moby/client"
)

// Request is one push that may trigger deploys, as every webhook source reports it.
type Request struct {
	Source     string    // the sender kind: dockerhub, distribution, …
	Repository string    // as pushed: acme/web, ghcr.io/acme/web
	Tag        string    // the pushed tag
	Digest     string    // the pushed manifest digest, when the sender reports one
	Pusher     string    // who pushed, when the sender says
	PushedAt   time.Time // when the push happened, by the sender's clock; zero when unknown
}

// Ticket says what a request set in motion.
type Ticket struct {
	ID       string   `json:"id"`
	Image    string   `json:"image"`
	Services []string `json:"services"` // project/service of every service queued for redeploy
}

// Options configure a Deployer.
type Options struct {
	Projects       []compose.Spec // the compose projects berth may redeploy
	Owners         []string       // namespaces whose pushes are accepted
	ComposeVersion string         // the compose release to imitate, overriding the one that made the containers ("" = that one)
	Parallel       int            // services deployed at the same time; default 2
	Logger         *slog.Logger
	Self           Self // the service berth runs as (FindSelf); never redeployed
	// Discover, when set, finds the projects from compose's labels on the engine's containers
	// at every push (Discover), instead of Projects.
	Discover bool
	Filter   ProjectFilter // which projects berth may touch, discovered or configured
	Environ  []string      // the environment discovered projects are interpolated with
	// OnRecord, if set, receives the Record of every finished deploy (history, metrics and
	// notifications hang off it). It runs on the deploy's goroutine: keep it quick.
	OnRecord func(Record)
	// OnStep, if set, receives each step of a running deploy as it starts and ends, and an
	// image pull's progress (steps.go). It runs on the deploy's goroutine: keep it quick.
	OnStep func(StepEvent)
	// Backend is BackendAuto (""), BackendCompose or BackendSwarm: see swarm.go.
	Backend string
	// RegistryAuth gives the credentials forwarded to the swarm's nodes with a service update;
	// image inspection tries them before the pull logins (Credentials).
	RegistryAuth registry.Credentials
	// SwarmTimeout bounds the wait for a swarm service update, and again for its rollback; default 5m.
	SwarmTimeout time.Duration
	// Gate is the pre-deploy gate of every service that does not set its own (berth.gate.* labels).
	Gate gate.Config

	StateDir      string        // where deploy journals and the replaced-image lists live; "" = memory only
	HealthTimeout time.Duration // default health wait timeout (label berth.health-timeout overrides); default 60s
	HealthSettle  time.Duration // how long a container without healthcheck must keep running; default 5s
	KeepImages    int           // replaced images kept per service for rollback; default 2, negative = 0
	RetryFor      time.Duration // how long a deploy the engine could not take is retried; default 10m
	// CrashAfter and Crash are a test hook: after the journal step named CrashAfter, Crash is
	// called (it kills the process), to prove Reconcile repairs every step.
	CrashAfter string
	Crash      func()
	// ForceRecreate recreates a service even when it already runs the pulled image with the
	// current config (compose's up --force-recreate), for parity checks; pushes never set it.
	ForceRecreate bool

	// RecordAccepted keeps every accepted push in STATE_DIR until its deploy ends, so that
	// Resume deploys it after a crash (berth serve; one process per STATE_DIR).
	RecordAccepted bool
	// Shutdown ends with the process's life: pulls and registry calls in flight stop then
	// (nothing was changed yet, and the push stays owed); rollouts in flight go on.
	Shutdown context.Context
	// PullTimeout bounds each image pull; default 10m. RegistryTimeout bounds each registry
	// request berth makes itself (image inspection); default 30s.
	PullTimeout     time.Duration
	RegistryTimeout time.Duration

	DryRun      bool                 // plan and record deploys as OutcomeWouldDeploy, changing nothing on the engine
	OptIn       bool                 // deploy only services labelled berth.enable=true
	Credentials registry.Credentials // registry logins for pulls
}

// Deployer matches pushes to compose services and redeploys them through the Engine API.
type Deployer struct {
	eng      Engine
	projects []compose.Spec
	owners   []string
	version  string // COMPOSE_VERSION: the compose release to imitate whatever made the containers; "" = that release
	log      *slog.Logger
	queue    *queue
	onRecord func(Record)
	onStep   func(StepEvent)
	// resources serializes creating project networks and volumes across parallel deploys.
	resources sync.Mutex
	self      Self
	discover  bool
	filter    ProjectFilter
	environ   []string

	backend       string
	registryAuth  registry.Credentials
	state         state.Dir
	healthTimeout time.Duration
	healthSettle  time.Duration
	keepImages    int
	retryFor      time.Duration
	crashAfter    string
	crash         func()
	lookedOnce    func() // a test hook: called when lookAgain has looked once
	force         bool
	images        sync.Mutex               // guards the replaced- and failed-image lists
	replaced      *imageLists[string]      // images the services ran before, kept for a rollback by hand
	failed        *imageLists[FailedImage] // images the services rolled back from
	loads         *projectLoads            // Deploy's project loads, shared by calls that arrive together
	swarm         *swarm.Backend
	discoveries   *shared.Calls[[]DiscoveredProject] // Deploy's discoveries, shared like loads
	keychain      authn.Keychain
	gate          gate.Config // the default pre-deploy gate
	dryRun        bool
	optIn         bool
	creds         registry.Credentials
	accepted      *state.Accepted       // pushes answered 202 and not yet deployed; nil unless RecordAccepted
	deployed      *state.DeployedPushes // per service, the push it last deployed (stale.go)
	shutdown      context.Context
	pullTimeout   time.Duration
	regTimeout    time.Duration
	watcher       atomic.Pointer[Watcher] // watch mode's, once started (watch.go)
	index         *index                  // the served projects, loaded, and which services run each image (index.go)
	life          context.Context         // New's: the index's background refresh ends with it
}

type job struct {
	id          string
	req         Request
	image       registry.Ref
	project     compose.Spec
	projectName string
	service     string
	dependent   bool // recreated because a service it depends on was: no pull, as compose does
	manual      bool // berth deploy: tried even if the image failed on the service before
	// sharedWith names the other services this push deploys, which name the same image
	// reference: a deploy that does not end on the pulled image leaves the reference alone.
	sharedWith []string
	key        string // project/service, under which the queue runs it and its push is settled
	// swarmService is the id of the swarm service to update; "" for a compose service.
	swarmService string
}

// New returns a Deployer that talks to the engine through eng (a *client.Client in production).
// Deploys run on ctx: cancelling it abandons deploys in flight, so pass a context that outlives
// request handling and use Wait for a graceful stop.
func New(ctx context.Context, eng Engine, o Options) *Deployer {
	if o.Parallel == 0 {
		o.Parallel = 2
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnRecord == nil {
		o.OnRecord = func(Record) {}
	}
	if o.KeepImages == 0 {
		o.KeepImages = DefaultKeepImages
	}
	dir := state.New(o.StateDir)
	d := &Deployer{eng: eng, projects: o.Projects, owners: o.Owners, version: o.ComposeVersion, log: o.Logger, onRecord: o.OnRecord, onStep: o.OnStep, self: o.Self,
		discover: o.Discover, filter: o.Filter, environ: o.Environ, keychain: authn.NewMultiKeychain(o.RegistryAuth.Keychain(), o.Credentials.Keychain()), gate: o.Gate,
		backend: cmp.Or(o.Backend, BackendAuto), registryAuth: o.RegistryAuth,
		state: dir, healthTimeout: cmp.Or(o.HealthTimeout, health.DefaultTimeout), healthSettle: cmp.Or(o.HealthSettle, health.DefaultSettle),
		keepImages: max(o.KeepImages, 0), retryFor: cmp.Or(o.RetryFor, DefaultRetryFor), crashAfter: o.CrashAfter, crash: o.Crash, force: o.ForceRecreate,
		replaced: newImageLists[string](dir, state.ReplacedImages), failed: newImageLists[FailedImage](dir, state.FailedImages),
		dryRun: o.DryRun, optIn: o.OptIn, creds: o.Credentials, shutdown: cmp.Or(o.Shutdown, context.Background()),
		pullTimeout: cmp.Or(o.PullTimeout, DefaultPullTimeout), regTimeout: cmp.Or(o.RegistryTimeout, DefaultRegistryTimeout)}
	if o.RecordAccepted {
		d.accepted = d.openAccepted()
	}
	d.deployed = d.openDeployed()
	d.queue = newQueue(ctx, o.Parallel, d.runJob)
	d.loads = newProjectLoads(compose.Load)
	d.swarm = d.newSwarm(eng, o.SwarmTimeout)
	d.discoveries = shared.NewCalls[[]DiscoveredProject]()
	d.index, d.life = newIndex(), ctx
	return d
}

// Deploy checks that req may be deployed, finds the services that run the pushed repository
// and tag, and queues a redeploy of each. It returns at once; the deploys run in the background.
// A request no service uses returns a Ticket with no services and no error.
func (d *Deployer) Deploy(ctx context.Context, req Request) (Ticket, error) {
	t, jobs, err := d.match(ctx, req)
	if err != nil {
		return Ticket{}, err
	}
	d.accept(t, req)
	d.submit(t, jobs)
	return t, nil
}

func (d *Deployer) submit(t Ticket, jobs []job) {
	for i, j := range jobs {
		j.key = t.Services[i]
		coalesced := d.queue.submit(j.key, j)
		d.log.Debug("deploy queued", "deploy", t.ID, "service", t.Services[i], "image", t.Image, "coalesced", coalesced)
	}
}

// Plan says which services a push would redeploy, without queueing anything (berth check --push).
func (d *Deployer) Plan(ctx context.Context, req Request) (Ticket, error) {
	t, _, err := d.match(ctx, req)
	return t, err
}

// match checks req and finds the jobs it calls for, one per service, in t.Services' order.
func (d *Deployer) match(ctx context.Context, req Request) (Ticket, []job, error) {
	pushed, err := registry.ParseRef(req.Repository + ":" + req.Tag)
	if err != nil || req.Tag == "" {
		return Ticket{}, nil, fault.Errorf(fault.Invalid, "pushed image %q with tag %q is not a valid image reference", req.Repository, req.Tag)
	}
	if req.Digest != "" {
		if _, err := registry.Pinned(req.Repository, req.Digest); err != nil {
			return Ticket{}, nil, err
		}
	}
	if ns := firstSegment(pushed.Namespace()); !slices.Contains(d.owners, ns) {
		return Ticket{}, nil, fault.Errorf(fault.Forbidden, "OWNER=%s does not allow namespace %s; set OWNER=%s to allow it",
			strings.Join(d.owners, ","), ns, strings.Join(append(slices.Clone(d.owners), ns), ","))
	}
	t := Ticket{ID: newID(), Image: pushed.Familiar(), Services: []string{}}
	var jobs []job
	var skipped []string
	services, err := d.routesFor(ctx, pushed, func(spec compose.Spec, err error) error {
		return d.unloadable(spec, pushed, err)
	})
	if err != nil {
		return Ticket{}, nil, err
	}
	jobs, skipped, err = d.swarmJobs(ctx, &t, req, pushed)
	if err != nil {
		return Ticket{}, nil, err
	}
	for _, sp := range services {
		p, name, ref := sp.project, sp.service, sp.ref
		if !registry.TracksTag(ref, pushed) {
			continue
		}
		if why := d.selects(p.Services[name].Labels); why != "" {
			d.log.Info("service not deployed: "+why, "project", p.Name, "service", name)
			continue
		}
		if d.self.isSelf(p.Name, name, ref) {
			skipped = append(skipped, p.Name+"/"+name)
			continue
		}
		jobs = append(jobs, job{id: t.ID, req: req, image: pushed, project: sp.spec, projectName: p.Name, service: name})
		t.Services = append(t.Services, p.Name+"/"+name)
	}
	shareReference(jobs)
	if len(skipped) > 0 && d.self.SwarmService != "" {
		err := fault.Errorf(fault.Conflict, "%s runs berth itself (or the socket proxy it talks through); berth does not update the service "+
			"serving this request. Update it from a manager node: `docker service update --image %s <service>`", strings.Join(skipped, ", "), t.Image)
		if len(jobs) == 0 {
			return Ticket{}, nil, err
		}
		d.log.Warn("push matches berth's own services; deploying the others only", "deploy", t.ID, "skipped", strings.Join(skipped, ","), "err", err)
	} else if len(skipped) > 0 {
		err := fault.Errorf(fault.Conflict, "%s runs berth itself (or the socket proxy it talks through); berth does not recreate "+
			"the container serving this request. Update it from the host: run `docker compose pull && docker compose up -d` in project %s",
			strings.Join(skipped, ", "), d.self.Project)
		if len(jobs) == 0 {
			return Ticket{}, nil, err
		}
		d.log.Warn("push matches berth's own services; deploying the others only", "deploy", t.ID, "skipped", strings.Join(skipped, ","), "err", err)
	}
	return t, jobs, nil
}

// unloadable answers a push when a project berth serves does not load: a 503 naming the project
// and the error (the sender retries, and the retry deploys once the files are fixed), unless
// the project is discovered and its files never name the pushed repository.
func (d *Deployer) unloadable(spec compose.Spec, pushed registry.Ref, err error) error {
	dir := cmp.Or(spec.HostDir, spec.Dir)
	if d.discover && !mightRun(spec, pushed) {
		d.log.Debug("discovered project does not load and never names the pushed repository; skipped", "project", spec.Name, "err", err)
		return nil
	}
	project := "project " + spec.Name
	if spec.Name == "" {
		project = "the project in " + dir
	}
	return fault.Errorf(fault.Unavailable, "%s does not load, so berth cannot tell whether it runs %s: %w; "+
		"fix its compose files (`docker compose config` in %s shows the same error)", project, pushed.Familiar(), err, dir)
}

// Wait blocks until every queued deploy has finished, or ctx ends.
func (d *Deployer) Wait(ctx context.Context) error { return d.queue.wait(ctx) }

// QueueDepth is the number of services with a deploy running or waiting.
func (d *Deployer) QueueDepth() int { return d.queue.depth() }

// runJob runs one service deploy and reports its Record.
func (d *Deployer) runJob(ctx context.Context, j job) {
	held := d.holdForWindow(ctx, j)
	log := d.log.With("deploy", j.id, "service", j.service, "image", j.image.Familiar())
	rec := Record{
		ID: j.id, Project: j.projectName, Service: j.service, Source: j.req.Source, Repository: j.req.Repository,
		Tag: j.req.Tag, Digest: j.req.Digest, Pusher: j.req.Pusher, PushedAt: j.req.PushedAt,
		Started: time.Now(), Steps: []Step{},
	}
	outcome, err := OutcomeSkipped, cmp.Or(held, d.stale(j))
	if err == nil {
		outcome, err = d.execute(ctx, log, j, &rec)
		d.remember(j, outcome)
	}
	d.settle(ctx, j, outcome, err)
	rec.Outcome, rec.Duration = outcome, time.Since(rec.Started)
	if err != nil {
		rec.Error = err.Error()
	}
	logOutcome(log, rec)
	d.onRecord(rec)
}

// execute runs the deploy j calls for, through the swarm or compose, noting its steps in rec.
// A compose deploy the engine could not take (unreachable daemon) before it touched anything
// is retried with backoff, for RetryFor at most and only while no newer push for the service
// is waiting.
func (d *Deployer) execute(ctx context.Context, log *slog.Logger, j job, rec *Record) (string, error) {
	if j.swarmService != "" {
		rec.Backend = BackendSwarm
		if d.dryRun {
			log.Info("dry run: would update swarm service", "service_id", j.swarmService, "ref", j.image.Familiar())
			return OutcomeWouldDeploy, nil
		}
		return d.updateService(ctx, log, j, rec)
	}
	// A dry run, or a push the tag policy refuses, ends here.
	if outcome, err := d.precheck(ctx, log, j); outcome != "" {
		return outcome, err
	}
	prog := d.newProgress(log)
	prog.report = d.stepReporter(j)
	defer func() { rec.Steps = prog.steps }()
	for backoff := time.Second; ; backoff = min(2*backoff, 30*time.Second) {
		outcome, err := d.redeploy(ctx, log, j, prog, rec)
		if err == nil || outcome != OutcomeFailed || !engineDown(err) || time.Since(rec.Started)+backoff > d.retryFor ||
			d.queue.waiting(j.projectName+"/"+j.service) {
			return outcome, err
		}
		log.Warn("engine unreachable; retrying the deploy", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return outcome, err
		case <-time.After(backoff):
		}
	}
}

// logOutcome logs how a deploy ended, one message per outcome.
func logOutcome(log *slog.Logger, rec Record) {
	attrs := []any{"outcome", rec.Outcome, "took", rec.Duration}
	if rec.Error != "" {
		attrs = append(attrs, "err", rec.Error)
	}
	switch rec.Outcome {
	case OutcomeDeployed:
		log.Info("deploy done", attrs...)
	case OutcomeFailed:
		log.Error("deploy failed", attrs...)
	case OutcomeRolledBack:
		log.Error("deploy failed and was rolled back; the previous version runs", attrs...)
	case OutcomeUpToDate:
		log.Info("deploy up to date", attrs...)
	case OutcomeRejected:
		if rec.Gate != nil {
			attrs = append(attrs, "gate", rec.Gate.Target, "reason", rec.Gate.Reason, "output", strings.Join(rec.Gate.Output, "\n"))
		}
		log.Warn("deploy rejected by gate; nothing was stopped", attrs...)
	default: // skipped by the tag policy or as older than the deployed push, or a dry run's would-deploy
		log.Info("deploy "+rec.Outcome, attrs...)
	}
}

// engineDown says whether err means the engine did not answer at all, worth retrying later.
func engineDown(err error) bool {
	return client.IsErrConnectionFailed(err) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) ||
		(fault.KindOf(err) == fault.Unavailable && !errors.Is(err, context.Canceled))
}

// progress records a deploy's steps, in order, in its Record and, once the deploy touches
// containers, in its journal before each one runs.
type progress struct {
	d       *Deployer
	log     *slog.Logger
	jn      *state.Journal
	steps   []Step
	touched bool            // a container was started or stopped: a failure now is rolled back
	report  func(StepEvent) // OnStep's, for this deploy; nil reports nothing
}

func (d *Deployer) newProgress(log *slog.Logger) *progress { return &progress{d: d, log: log} }

// do journals step name, runs fn, and records how it went.
func (p *progress) do(name, ctr string, fn func() error) error {
	if p.jn != nil && name != "rollback" {
		if err := p.jn.Write(name); err != nil {
			return err
		}
	}
	p.log.Debug(name, "container", ctr)
	at := time.Now()
	if p.report != nil {
		p.report(StepEvent{Step: Step{Name: name, Container: ctr, At: at}})
	}
	err := fn()
	st := Step{Name: name, Container: ctr, At: at, Took: time.Since(at)}
	if err != nil {
		st.Error = err.Error()
	}
	if p.report != nil {
		p.report(StepEvent{Step: st, Done: true})
	}
	p.steps = append(p.steps, st)
	if name == "start" || name == "stop" {
		p.touched = true
	}
	if p.d.crashAfter == name && p.d.crash != nil {
		p.log.Warn("test hook: crashing after step", "step", name)
		p.d.crash()
	}
	return err
}

func firstSegment(ns string) string {
	first, _, _ := strings.Cut(ns, "/")
	return first
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
