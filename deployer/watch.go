package deployer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/state"
	"github.com/berth-dev/berth/deployer/watch"
)

// Watch mode: services that opt in (berth.watch=true, or WATCH=all) have their tag's current
// digest read from the registry on a schedule (deployer/watch); a digest the service does not
// run is deployed through the same queue, gate, rollback and records as a webhook push
// (Request.Source "watch"), once the minimum age, the window and an approval allow it.

// Outcomes of watch mode's records, which deploy nothing.
const (
	OutcomeAvailable = "available" // berth.watch=notify: a new digest is available, not deployed
	OutcomeHeld      = "held"      // berth.approve=manual: a new digest waits for `berth approve`
	OutcomeDeclined  = "declined"  // an update held for approval was rejected by hand
	OutcomeExpired   = "expired"   // an update held for approval was superseded before it was approved
)

// WatchOptions configure a Watcher.
type WatchOptions struct {
	Defaults watch.Defaults
	Limit    int           // registry checks in flight at most; default watch.DefaultLimit
	Tick     time.Duration // how often due checks are looked for; default 1s
	Refresh  time.Duration // how often the watched services are listed again; default 1m
	Now      func() time.Time
	// Transport carries the registry requests; nil = go-containerregistry's default.
	Transport http.RoundTripper
	// OnCheck, if set, is told every check's result: ok, throttled or error.
	OnCheck func(result string, at time.Time)
}

// Watcher checks the watched services' registries and deploys what changed.
type Watcher struct {
	d       *Deployer
	o       WatchOptions
	sched   *watch.Schedule
	runner  *watch.Runner
	seen    *state.Watched
	mu      sync.Mutex
	targets map[string]watchTarget
	status  map[string]WatchStatus
	asked   map[string]asked                   // per service, the digest last queued for deploy
	badSeen map[string]string                  // per service, the label error last logged
	tagSeen map[string]string                  // per service, the newer tag last recorded
	deploy  func(t watchTarget, digest string) // d.deployWatched; tests replace it
}

// WatchStatus is what watch mode knows of one service.
type WatchStatus struct {
	Mode      string    `json:"mode"` // deploy or notify
	Interval  string    `json:"interval"`
	LastCheck time.Time `json:"last_check,omitzero"`
	Result    string    `json:"result,omitempty"` // ok, throttled, error
	Error     string    `json:"error,omitempty"`
	Running   string    `json:"running_digest,omitempty"`
	Available string    `json:"available_digest,omitempty"`
	Waiting   string    `json:"waiting,omitempty"` // min-age, window, approval, rejected
	Until     time.Time `json:"until,omitzero"`
	NextCheck time.Time `json:"next_check,omitzero"`
	NewerTag  string    `json:"newer_tag,omitempty"` // notify-only with the semver tag policy: the newest newer tag
}

// asked is a digest watch mode queued for deploy, and when.
type asked struct {
	digest string
	at     time.Time
}

type watchTarget struct {
	key, project, service string
	spec                  compose.Spec
	ref                   string       // the image as the compose file names it
	image                 registry.Ref // parsed
	policy                watch.Policy
	swarmService          string // the swarm service's id; "" for a compose service
}

// NewWatcher returns d's watcher; its state (first-seen times, approvals) lives in STATE_DIR.
func (d *Deployer) NewWatcher(o WatchOptions) (*Watcher, error) {
	seen, err := d.state.Watched()
	if err != nil {
		return nil, err
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.Refresh <= 0 {
		o.Refresh = time.Minute
	}
	sched := watch.NewSchedule(nil)
	w := &Watcher{d: d, o: o, sched: sched, runner: watch.NewRunner(sched, o.Limit, o.Now), seen: seen,
		targets: map[string]watchTarget{}, status: map[string]WatchStatus{}, asked: map[string]asked{}, badSeen: map[string]string{},
		tagSeen: map[string]string{}}
	w.deploy = func(t watchTarget, digest string) { d.deployWatched(t, digest) }
	d.watcher.Store(w)
	return w, nil
}

// Watcher is d's watcher, nil unless watch mode runs.
func (d *Deployer) Watcher() *Watcher { return d.watcher.Load() }

// Run checks due services every tick until ctx ends, then waits for the checks in flight.
func (w *Watcher) Run(ctx context.Context) {
	tick := time.NewTicker(w.o.Tick)
	defer tick.Stop()
	var listed time.Time
	for {
		if now := w.o.Now(); listed.IsZero() || now.Sub(listed) >= w.o.Refresh {
			w.refresh(ctx)
			listed = now
		}
		w.runner.Tick(ctx, w.intervals(), w.check)
		select {
		case <-ctx.Done():
			w.runner.Wait()
			return
		case <-tick.C:
		}
	}
}

func (w *Watcher) intervals() map[string]time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]time.Duration, len(w.targets))
	for k, t := range w.targets {
		out[k] = t.policy.Interval
	}
	return out
}

// refresh lists the watched services again; on an error the last list stays.
func (w *Watcher) refresh(ctx context.Context) {
	targets, err := w.d.watchTargets(ctx, w.o.Defaults, w.logBadLabel)
	if err != nil {
		w.d.log.Warn("watch: cannot list the watched services; keeping the last list", "err", err)
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.targets = targets
	for k := range w.status {
		if _, ok := targets[k]; !ok {
			delete(w.status, k)
		}
	}
}

// logBadLabel warns once per service and error about a watch label berth cannot read.
func (w *Watcher) logBadLabel(key string, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.badSeen[key] == err.Error() {
		return
	}
	w.badSeen[key] = err.Error()
	w.d.log.Warn("watch: service not watched: a label is wrong", "service", key, "err", err)
}

// watchTargets lists the services berth serves and watches, by project/service (compose) and
// stack/service (swarm, swarmwatch.go), as the backend allows.
func (d *Deployer) watchTargets(ctx context.Context, defaults watch.Defaults, bad func(string, error)) (map[string]watchTarget, error) {
	out := map[string]watchTarget{}
	if d.backend != BackendSwarm {
		if err := d.composeWatchTargets(ctx, defaults, bad, out); err != nil {
			return nil, err
		}
	}
	if d.backend != BackendCompose {
		if err := d.swarmWatchTargets(ctx, defaults, bad, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// composeWatchTargets adds the compose services berth serves and watches to out.
func (d *Deployer) composeWatchTargets(ctx context.Context, defaults watch.Defaults, bad func(string, error), out map[string]watchTarget) error {
	projects, err := d.indexedProjects(ctx) // no project load unless its files changed
	if err != nil {
		return err
	}
	for _, sp := range projects {
		p := sp.project
		for _, name := range serviceNames(p) {
			s, key := p.Services[name], p.Name+"/"+name
			pol, err := watch.ParsePolicy(s.Labels, defaults)
			if err != nil {
				bad(key, err)
				continue
			}
			ref, rerr := registry.ParseRef(s.Image)
			if pol.Mode == watch.ModeOff || rerr != nil || ref.Tag == "" || ref.Digest != "" || d.self.isSelf(p.Name, name, ref) {
				continue // a pinned digest never changes; berth never updates itself
			}
			if pol.Mode == watch.ModeDeploy && d.selects(s.Labels) != "" {
				continue
			}
			out[key] = watchTarget{key: key, project: p.Name, service: name, spec: sp.spec, ref: s.Image, image: ref, policy: pol}
		}
	}
	return nil
}

// Status is what watch mode knows of every watched service, by project/service.
func (w *Watcher) Status() map[string]WatchStatus {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]WatchStatus, len(w.targets))
	for k, t := range w.targets {
		st := w.status[k]
		st.Mode, st.Interval, st.NextCheck = t.policy.Mode, t.policy.Interval.String(), w.sched.Next(k)
		out[k] = st
	}
	return out
}

func (w *Watcher) target(key string) (watchTarget, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	t, ok := w.targets[key]
	return t, ok
}

// check reads key's running and available digests and acts on them.
func (w *Watcher) check(ctx context.Context, key string) error {
	t, ok := w.target(key)
	if !ok {
		return nil
	}
	now := w.o.Now()
	st := WatchStatus{LastCheck: now, Result: "ok"}
	running, available, err := w.digests(ctx, t)
	st.Running, st.Available = running, available
	if err == nil {
		w.act(ctx, t, running, available, now, &st)
		if t.policy.NewerTags {
			err = w.newerTag(ctx, t, &st)
		}
	}
	if err != nil {
		st.Result, st.Error = "error", err.Error()
		if th := (*watch.Throttled)(nil); errors.As(err, &th) {
			st.Result = "throttled"
		}
		w.d.log.Warn("watch: check failed", "service", key, "image", t.image.Familiar(), "err", err)
	}
	w.mu.Lock()
	w.status[key] = st
	w.mu.Unlock()
	if w.o.OnCheck != nil {
		w.o.OnCheck(st.Result, now)
	}
	return err
}

// digests is the digest t's containers run (its image's repo digest; a swarm service's spec
// pins it) and the one its tag names now.
func (w *Watcher) digests(ctx context.Context, t watchTarget) (running, available string, err error) {
	if t.swarmService != "" {
		running, err = w.d.swarm.PinnedDigest(ctx, t.swarmService)
	} else {
		running, err = w.composeRunning(ctx, t)
	}
	if err != nil {
		return "", "", err
	}
	ctx, cancel := context.WithTimeout(ctx, w.d.regTimeout)
	defer cancel()
	available, err = watch.Head(ctx, t.ref, w.d.keychain, w.o.Transport)
	return running, available, err
}

// composeRunning is the digest t's containers run: their image's repo digest.
func (w *Watcher) composeRunning(ctx context.Context, t watchTarget) (string, error) {
	ss, err := w.d.serviceStatus(ctx, t.project, t.service, t.ref)
	if err != nil {
		return "", err
	}
	_, digest, _ := strings.Cut(ss.RepoDigest, "@")
	return digest, nil
}

// act decides what available calls for and does it, noting why it waits in st.
func (w *Watcher) act(ctx context.Context, t watchTarget, running, available string, now time.Time, st *WatchStatus) {
	if available == running {
		w.forget(t.key)
		return
	}
	prev, _ := w.seen.Get(t.key)
	seen, err := w.seen.See(t.key, available, now)
	if err != nil {
		w.d.log.Warn("watch: first-seen time not saved; a restart starts the minimum age again", "service", t.key, "err", err)
	}
	if t.policy.Manual && prev.Digest != "" && prev.Digest != available && prev.Notified && !prev.Approved && !prev.Rejected {
		w.record(t, prev.Digest, OutcomeExpired, "the update held for approval expired: the tag now names "+available)
	}
	if seen.Rejected {
		st.Waiting = "rejected"
		return
	}
	v := watch.Decide(t.policy, running, available, watch.Seen{FirstSeen: seen.FirstSeen, Approved: seen.Approved}, now)
	st.Waiting, st.Until = v.Why, v.Until
	switch v.Action {
	case watch.ActionNotify:
		if !seen.Notified {
			w.record(t, available, OutcomeAvailable, "new digest available: "+available)
			_, _ = w.seen.Update(t.key, available, func(wd *state.WatchedDigest) { wd.Notified = true })
		}
	case watch.ActionWait:
		if v.Why == watch.WaitApproval && !seen.Notified {
			w.record(t, available, OutcomeHeld, fmt.Sprintf("new digest %s (running %s) waits: run `berth approve %s`", available, orUnknown(running), t.key))
			_, _ = w.seen.Update(t.key, available, func(wd *state.WatchedDigest) { wd.Notified = true })
		}
	case watch.ActionDeploy:
		if !w.ask(t.key, available, now) || ctx.Err() != nil {
			return
		}
		w.d.log.Info("watch: new digest; deploying", "service", t.key, "image", t.image.Familiar(), "digest", available, "running", running)
		w.deploy(t, available)
	}
}

// newerTag lists t's repository's tags and records, once per tag, the newest one of t's tag's
// shape that is newer; berth never edits a compose file, so it only reports it.
func (w *Watcher) newerTag(ctx context.Context, t watchTarget, st *WatchStatus) error {
	ctx, cancel := context.WithTimeout(ctx, w.d.regTimeout)
	defer cancel()
	tag, err := watch.NewerTag(ctx, t.ref, w.d.keychain, w.o.Transport)
	if err != nil {
		return err
	}
	st.NewerTag = tag
	w.mu.Lock()
	fresh := tag != "" && w.tagSeen[t.key] != tag
	w.tagSeen[t.key] = tag
	w.mu.Unlock()
	if fresh {
		newer := registry.Ref{Name: t.image.Name, Tag: tag}
		w.record(t, "", OutcomeAvailable, fmt.Sprintf("newer tag %s available (running %s); berth does not edit compose files", newer.Familiar(), t.image.Tag))
	}
	return nil
}

// ask notes that digest is to be deployed on key now, and says whether to queue it: not while
// its deploy is queued or running, nor once it was rolled back (not again until the tag
// moves on); a deploy that ended otherwise (a failed pull, a gate's veto) is tried again.
func (w *Watcher) ask(key, digest string, now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if a, ok := w.asked[key]; ok && a.digest == digest {
		if w.d.queue.busy(key) || slices.ContainsFunc(w.d.FailedImages(key), func(f FailedImage) bool { return !f.At.Before(a.at) }) {
			return false
		}
	}
	w.asked[key] = asked{digest: digest, at: now}
	return true
}

func (w *Watcher) forget(key string) {
	if err := w.seen.Forget(key); err != nil {
		w.d.log.Warn("watch: state not saved", "service", key, "err", err)
	}
}

// record reports a watch event that deploys nothing (notify-only, rejected) as a Record.
func (w *Watcher) record(t watchTarget, digest, outcome, msg string) {
	rec := Record{ID: newID(), Project: t.project, Service: t.service, Source: "watch", Repository: t.image.Name,
		Tag: t.image.Tag, Digest: digest, Started: w.o.Now(), Outcome: outcome, Error: msg, Steps: []Step{}}
	logOutcome(w.d.log.With("service", t.key), rec)
	w.d.onRecord(rec)
}

// deployWatched queues t's deploy of digest as a push from watch mode would.
func (d *Deployer) deployWatched(t watchTarget, digest string) Ticket {
	req := Request{Source: "watch", Repository: t.image.Name, Tag: t.image.Tag, Digest: digest}
	tk := Ticket{ID: newID(), Image: t.image.Familiar(), Services: []string{t.key}}
	image := registry.Ref{Name: t.image.Name, Tag: t.image.Tag}
	// A swarm service's job is swarmJobs' (no compose project); the queue runs it the same way.
	j := job{id: tk.ID, req: req, image: image, project: t.spec, projectName: t.project, service: t.service, swarmService: t.swarmService}
	d.accept(tk, req)
	d.submit(tk, []job{j})
	return tk
}

// Decide approves (or rejects) the update held for service's approval: the digest its tag
// named at the last check. service is project/service or a service name.
func (w *Watcher) Decide(service string, approve bool) (string, error) {
	key, err := w.resolve(service)
	if err != nil {
		return "", err
	}
	wd, ok := w.seen.Get(key)
	if !ok {
		return "", fault.Errorf(fault.NotFound, "%s has no update waiting: its tag names the digest it runs (as of the last check)", key)
	}
	found, err := w.seen.Update(key, wd.Digest, func(x *state.WatchedDigest) { x.Approved, x.Rejected = approve, !approve })
	if err != nil || !found {
		return "", fmt.Errorf("record the decision on %s: %w", key, err)
	}
	if t, ok := w.target(key); ok && !approve {
		w.record(t, wd.Digest, OutcomeDeclined, "update rejected by hand")
	} else if approve {
		w.sched.Now(key, w.o.Now()) // deployed at the next tick, not an interval later
	}
	w.d.log.Info("watch: update decided", "service", key, "digest", wd.Digest, "approved", approve)
	return wd.Digest, nil
}

func (w *Watcher) resolve(service string) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.targets[service]; ok {
		return service, nil
	}
	var found []string
	for k := range w.targets {
		if _, s, _ := strings.Cut(k, "/"); s == service {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return "", fault.Errorf(fault.NotFound, "no watched service %s", service)
	}
	return "", fault.Errorf(fault.Invalid, "service %s is in several projects (%s); name one as project/service", service, strings.Join(found, ", "))
}

// Approve approves (approve) or rejects the update held for service (berth approve, POST
// /api/approve) and returns its digest.
func (d *Deployer) Approve(_ context.Context, service string, approve bool) (string, error) {
	w := d.Watcher()
	if w == nil {
		return "", fault.Errorf(fault.Conflict, "watch mode is off (WATCH=off), so no update waits for approval")
	}
	return w.Decide(service, approve)
}

// WatchStatus is watch mode's view of service (project/service), if it watches it.
func (d *Deployer) WatchStatus(service string) (WatchStatus, bool) {
	w := d.Watcher()
	if w == nil {
		return WatchStatus{}, false
	}
	st, ok := w.Status()[service]
	return st, ok
}
