package deployer

import (
	"context"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/filestamp"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/shared"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"
)

// How the index keeps up (docs/design.md#the-project-index): files are checked at every push
// (one stat each), engine events rerun discovery after eventDebounce, and everything is
// reloaded every safetyRefresh whatever was seen.
const (
	eventDebounce = 100 * time.Millisecond
	safetyRefresh = 5 * time.Minute
	eventsRetry   = time.Second
)

// index is the projects berth serves, loaded once, and which of their services run each
// image: a push is matched by a map lookup, not by loading compose files. A push checks the
// index's files first (a stat each), so an edit is seen by the next push; discovery reruns
// when the engine reports compose containers created or removed.
type index struct {
	sweeps *shared.Calls[*snapshot] // pushes that arrive together share one check
	mu     sync.Mutex
	snap   *snapshot
	// rediscover: the next check runs discovery again (an engine event, the safety refresh,
	// or no event stream to trust); reload: it also reloads every project.
	rediscover, reload bool
	watching           bool
	live               bool  // the engine's event stream is open: discovery is rerun on events only
	events             int64 // compose container events received
}

// snapshot is the index at one moment; it is never modified once published.
type snapshot struct {
	specs    []projectSpec
	projects []indexedProject
	routes   map[string][]route // "name:tag" of a service's image → the services, in match order
	events   int64              // index.events when specs were discovered
}

// indexedProject is one served project as last loaded; err is why it does not load.
type indexedProject struct {
	spec    compose.Spec
	key     string
	project *types.Project
	err     error
	broken  bool // err came from discovery
	files   filestamp.Set
}

// route is one service of an indexed project, with its image reference parsed once.
type route struct {
	project int // in snapshot.projects
	service string
	ref     registry.Ref
}

// routed is a service whose image a push names, with its project.
type routed struct {
	spec    compose.Spec
	project *types.Project
	service string
	ref     registry.Ref // the service's image
}

// eventsEngine is the engine call that tells the index compose containers came or went; an
// Engine without it (a test's stand-in) leaves discovery to every push. GET /events is in the
// socket proxy's rules.
type eventsEngine interface {
	Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult
}

func newIndex() *index { return &index{sweeps: shared.NewCalls[*snapshot]()} }

// routesFor is the services whose image reference is pushed's name and tag, from an index
// checked after this call arrived. A served project that does not load goes to onLoadErr
// first, as servedProjects does.
func (d *Deployer) routesFor(ctx context.Context, pushed registry.Ref, onLoadErr func(compose.Spec, error) error) ([]routed, error) {
	snap, err := d.checkedIndex(ctx)
	if err != nil {
		return nil, err
	}
	key := pushed.Name + ":" + pushed.Tag
	if len(snap.routes[key]) == 0 && d.discover && d.index.eventsSince(snap) {
		// An event not yet acted on may be the project this push is for: look before saying no.
		d.index.mu.Lock()
		d.index.rediscover = true
		d.index.mu.Unlock()
		if snap, err = d.checkedIndex(ctx); err != nil {
			return nil, err
		}
	}
	for _, ip := range snap.projects {
		if ip.err != nil {
			if err := onLoadErr(ip.spec, ip.err); err != nil {
				return nil, err
			}
		}
	}
	out := make([]routed, 0, len(snap.routes[key]))
	for _, r := range snap.routes[key] {
		ip := snap.projects[r.project]
		out = append(out, routed{spec: ip.spec, project: ip.project, service: r.service, ref: r.ref})
	}
	return out, nil
}

func (ix *index) eventsSince(snap *snapshot) bool {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	return ix.events != snap.events
}

// checkedIndex returns the index as of a check that started after this call.
func (d *Deployer) checkedIndex(ctx context.Context) (*snapshot, error) {
	return d.index.sweeps.Do(ctx, "", d.checkIndex)
}

// checkIndex brings the index up to date: discovery again if asked, and a reload of each
// project whose files changed (or that discovery now specifies differently).
func (d *Deployer) checkIndex(ctx context.Context) (*snapshot, error) {
	ix := d.index
	ix.mu.Lock()
	old, events := ix.snap, ix.events
	rediscover := old == nil || ix.rediscover || (d.discover && !ix.live)
	reload := ix.reload
	ix.rediscover, ix.reload = false, false
	if !ix.watching {
		ix.watching = true
		go d.watchIndex(d.life)
	}
	ix.mu.Unlock()

	if !rediscover && d.discover && filesChanged(old) {
		rediscover = true // discovery infers profiles from the files: run it again too
	}
	specs := []projectSpec(nil)
	if old != nil {
		specs = old.specs
	}
	if rediscover {
		var err error
		if specs, err = d.projectSpecs(ctx); err != nil {
			ix.mu.Lock()
			ix.rediscover = true
			ix.mu.Unlock()
			return nil, err
		}
	}
	reused := map[string]indexedProject{}
	if old != nil && !reload && rediscover {
		for _, ip := range old.projects {
			reused[ip.key] = ip
		}
	}
	snap := &snapshot{specs: specs, events: events}
	if old != nil && !rediscover {
		snap.events = old.events
	}
	changed := old == nil || rediscover || reload
	for i, spec := range specs {
		var ip indexedProject
		ok := false
		if rediscover {
			ip, ok = reused[spec.Key()] // a key holds the environment: built only when the specs are new
		} else if !reload {
			ip, ok = old.projects[i], true // the same specs, in the same order
		}
		// Discovery's own verdict (unreadable files, profiles it could not infer) is taken afresh.
		if !ok || (rediscover && (ip.broken || spec.broken != nil)) || ip.files.Changed() {
			ip, changed = d.loadIndexed(ctx, spec), true
		} else if settled, ok := ip.files.Settled(); ok {
			ip.files, changed = settled, true
		}
		snap.projects = append(snap.projects, ip)
	}
	if !changed {
		return old, nil
	}
	snap.routes = d.indexRoutes(snap.projects)
	ix.mu.Lock()
	ix.snap = snap
	ix.mu.Unlock()
	return snap, nil
}

func filesChanged(s *snapshot) bool {
	for _, ip := range s.projects {
		if ip.files.Changed() {
			return true
		}
	}
	return false
}

// loadIndexed loads spec, stamping its files first so that an edit during the load is seen
// by the next check; the files only the load names (services' env_file) are stamped after it.
func (d *Deployer) loadIndexed(ctx context.Context, spec projectSpec) indexedProject {
	ip := indexedProject{spec: spec.Spec, key: spec.Key(), err: spec.broken, broken: spec.broken != nil}
	known := specFiles(spec.Spec)
	ip.files = filestamp.Take(known)
	if ip.err != nil {
		return ip
	}
	p, files, err := compose.LoadFiles(ctx, spec.Spec)
	if err != nil {
		ip.err = err
		return ip
	}
	ip.project = p
	if len(files) > 0 {
		before := ip.files
		ip.files = filestamp.Take(append(known, files...))
		if before.Changed() {
			// An edit landed during the load: a stamp of the new files must not vouch for it.
			ip.files = before
		}
	}
	return ip
}

// indexRoutes maps each image reference a service runs to the services, in the order a push
// lists them: projects in order, services by name; projects PROJECTS/SKIP_PROJECTS exclude
// are left out, as servedProjects does.
func (d *Deployer) indexRoutes(projects []indexedProject) map[string][]route {
	routes := map[string][]route{}
	for i, ip := range projects {
		if ip.err != nil {
			continue
		}
		if !d.filter.allows(ip.project.Name) {
			d.log.Debug("project not allowed by PROJECTS/SKIP_PROJECTS; skipped", "project", ip.project.Name)
			continue
		}
		for _, name := range serviceNames(ip.project) {
			ref, err := registry.ParseRef(ip.project.Services[name].Image)
			if err != nil || ref.Digest != "" {
				continue
			}
			k := ref.Name + ":" + ref.Tag
			routes[k] = append(routes[k], route{project: i, service: name, ref: ref})
		}
	}
	return routes
}

// indexedProjects is the projects berth serves that load, from an index checked now (a stat
// per file; a project is loaded again only when its files changed), in match order. Callers
// must not modify them.
func (d *Deployer) indexedProjects(ctx context.Context) ([]served, error) {
	snap, err := d.checkedIndex(ctx)
	if err != nil {
		return nil, err
	}
	var out []served
	for _, ip := range snap.projects {
		if ip.err == nil && d.filter.allows(ip.project.Name) {
			out = append(out, served{spec: ip.spec, project: ip.project})
		}
	}
	return out, nil
}

// projectFor is spec's project for a deploy: the index's copy while its files are unchanged,
// else loaded anew.
func (d *Deployer) projectFor(ctx context.Context, spec compose.Spec) (*types.Project, error) {
	if p, ok := d.indexedProjectFor(spec); ok {
		return p, nil
	}
	return compose.Load(ctx, spec)
}

// indexedProjectFor returns a copy of spec's project as indexed, if its files have not changed
// since it was loaded: a deploy need not load it again.
func (d *Deployer) indexedProjectFor(spec compose.Spec) (*types.Project, bool) {
	d.index.mu.Lock()
	snap := d.index.snap
	d.index.mu.Unlock()
	if snap == nil {
		return nil, false
	}
	key := spec.Key()
	for _, ip := range snap.projects {
		if ip.key != key || ip.err != nil || ip.files.Changed() {
			continue
		}
		// A copy: the deploy may adjust its project, and pushes keep reading this one.
		p, err := ip.project.WithServicesTransform(func(_ string, s types.ServiceConfig) (types.ServiceConfig, error) { return s, nil })
		return p, err == nil
	}
	return nil, false
}

// watchIndex keeps the index current in the background: a discovery after engine events
// (debounced) and a full reload every safetyRefresh, until ctx ends.
func (d *Deployer) watchIndex(ctx context.Context) {
	ix := d.index
	safety := time.NewTicker(safetyRefresh)
	defer safety.Stop()
	var debounce <-chan time.Time
	var msgs <-chan events.Message
	var errs <-chan error
	var retry <-chan time.Time
	watcher, canWatch := d.eng.(eventsEngine)
	open := func() {
		if !d.discover || !canWatch {
			return // without events, every push discovers as it did before the index
		}
		res := watcher.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).
			Add("type", "container").Add("label", compose.LabelProject).Add("event", "create", "destroy")})
		msgs, errs = res.Messages, res.Err
		ix.mu.Lock()
		ix.live = true
		ix.mu.Unlock()
	}
	refresh := func(reload bool) {
		ix.mu.Lock()
		ix.rediscover = true
		ix.reload = ix.reload || reload
		ix.mu.Unlock()
		if _, err := d.checkedIndex(ctx); err != nil && ctx.Err() == nil {
			d.log.Debug("project index refresh failed; the next push tries again", "err", err)
		}
	}
	open()
	if msgs != nil {
		refresh(false) // what came or went between the first discovery and the subscription
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-msgs:
			ix.mu.Lock()
			ix.events++
			ix.mu.Unlock()
			if debounce == nil {
				debounce = time.After(eventDebounce)
			}
		case err := <-errs:
			d.log.Debug("engine event stream ended; discovering at every push until it is back", "err", err)
			msgs, errs = nil, nil
			ix.mu.Lock()
			ix.live = false
			ix.mu.Unlock()
			retry = time.After(eventsRetry)
		case <-retry:
			retry = nil
			open()
			refresh(false) // what happened while the stream was down
		case <-debounce:
			debounce = nil
			refresh(false)
		case <-safety.C:
			refresh(true)
		}
	}
}
