package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
)

// timelineLength is how many deploys the page shows.
const timelineLength = 100

// page is what pageHTML writes.
type page struct {
	CSRF        string
	CanDeploy   bool
	Live        bool
	Newest      string // the newest record's id: the script reloads when the stream names another
	ServicesErr string
	Services    []serviceRow
	Deploys     []deployer.Record
	Filter      filter
	Known       []string // project/service of every service, for the filter
}

// filter narrows the timeline to one service and/or one outcome.
type filter struct{ Service, Outcome string }

// outcomes lists the outcomes the filter offers.
func (filter) outcomes() []string {
	return []string{deployer.OutcomeDeployed, deployer.OutcomeUpToDate, deployer.OutcomeFailed,
		deployer.OutcomeRolledBack, deployer.OutcomeRejected, deployer.OutcomeSkipped, deployer.OutcomeWouldDeploy}
}

// serviceRow is one line of the services table.
type serviceRow struct {
	deployer.ServiceStatus
	Key  string // project/service
	Last *deployer.Record
}

// handlePage renders the page for an authenticated caller and the login form for anyone else.
func (u *UI) handlePage() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.authenticate(r)
		switch {
		case errors.Is(err, errNoCredential):
			u.renderLogin(w, http.StatusUnauthorized, "")
			return
		case err != nil && u.deps.Status(err) == http.StatusUnauthorized && c.session == "" && r.Header.Get("Authorization") == "":
			setSession(w, r, "") // an expired or foreign cookie: forget it
			u.renderLogin(w, http.StatusUnauthorized, "Your session has expired; log in again.")
			return
		case err != nil:
			u.deps.Fail(w, r, err)
			return
		}
		p := page{CanDeploy: u.deps.Deployer != nil, Live: u.deps.Events != nil,
			Filter: filter{Service: r.URL.Query().Get("service"), Outcome: r.URL.Query().Get("outcome")}}
		if c.session != "" {
			p.CSRF = u.keys.csrf(c.session)
		}
		var records []deployer.Record
		if u.deps.History != nil {
			records = u.deps.History.Records(0)
		}
		if len(records) > 0 {
			p.Newest = records[0].ID + "/" + records[0].Project + "/" + records[0].Service
		}
		if u.deps.Services != nil {
			all, err := u.deps.Services.Services(r.Context())
			if err != nil {
				u.deps.Log.Warn("status page: services unavailable", "err", err)
				p.ServicesErr = err.Error()
			}
			p.Services = rows(all, records)
		}
		for _, s := range p.Services {
			p.Known = append(p.Known, s.Key)
		}
		p.Deploys = p.Filter.apply(records, timelineLength)
		w.Header().Set("Cache-Control", "no-store")
		u.render(w, http.StatusOK, pageHTML(p))
	})
}

// rows pairs each service with its newest deploy record.
func rows(all []deployer.ServiceStatus, records []deployer.Record) []serviceRow {
	out := make([]serviceRow, 0, len(all))
	for _, s := range all {
		row := serviceRow{ServiceStatus: s, Key: s.Project + "/" + s.Service}
		if i := slices.IndexFunc(records, func(r deployer.Record) bool { return r.Project == s.Project && r.Service == s.Service }); i >= 0 {
			row.Last = &records[i]
		}
		out = append(out, row)
	}
	return out
}

// apply keeps the records the filter selects, at most n.
func (f filter) apply(records []deployer.Record, n int) []deployer.Record {
	var out []deployer.Record
	for _, r := range records {
		if f.Service != "" && r.Project+"/"+r.Service != f.Service || f.Outcome != "" && r.Outcome != f.Outcome {
			continue
		}
		if out = append(out, r); len(out) == n {
			break
		}
	}
	return out
}

// deployAnswer is the JSON answer to the deploy button.
type deployAnswer struct {
	Status string `json:"status"`
	deployer.Ticket
}

// handleDeploy is the "deploy now" button: the service's own image, through the same path
// as `berth deploy`. It answers 202 with the ticket; the script shows it and the timeline
// gains the record when the deploy ends.
func (u *UI) handleDeploy() http.Handler {
	return u.handleButton("deploy", func(ctx context.Context, service string) (deployer.Ticket, error) {
		return u.deps.Deployer.DeployService(ctx, service, "")
	})
}

// handleRollback is the "roll back" button: the service goes back to the image it ran before
// berth's last deploy, through the same queue, health gate and record.
func (u *UI) handleRollback() http.Handler {
	return u.handleButton("rollback", u.deps.Deployer.RollBackService)
}

// handleButton checks a button's form (session or token, same origin, CSRF token) and runs
// act on the service it names.
func (u *UI) handleButton(verb string, act func(ctx context.Context, service string) (deployer.Ticket, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := u.required(r)
		if err == nil {
			err = u.checkForm(r, c)
		}
		service := r.PostFormValue("service")
		if err == nil && service == "" {
			err = fault.Errorf(fault.Invalid, "the form names no service")
		}
		var t deployer.Ticket
		if err == nil {
			t, err = act(r.Context(), service)
		}
		if err != nil {
			u.deps.Fail(w, r, err)
			return
		}
		u.deps.Log.Info(verb+" requested from the status page", "service", service, "deploy", t.ID, "image", t.Image, "remote", r.RemoteAddr)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusAccepted)
		_ = json.NewEncoder(w).Encode(deployAnswer{Status: "queued", Ticket: t})
	})
}

// render answers with a page pageHTML or loginHTML wrote.
func (u *UI) render(w http.ResponseWriter, status int, page []byte) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(page)
}

// label is one of an image's org.opencontainers.image.* labels ("version", "revision", "source").
func label(labels map[string]string, name string) string {
	return labels["org.opencontainers.image."+name]
}

// when is a time as the page shows it: 2006-01-02 15:04:05 UTC.
func when(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") }

// iso is a time for a datetime attribute.
func iso(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// took is a duration rounded to the millisecond.
func took(d time.Duration) string { return d.Round(time.Millisecond).String() }

// firstRunes is s cut to its first n characters (what the template's printf "%.12s" did).
func firstRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// shortID is a digest or image id cut to 12 hex digits (sha256:0123456789ab), or a
// repository@digest with its digest cut.
func shortID(s string) string {
	repo, digest, ok := strings.Cut(s, "@")
	if !ok {
		repo, digest = "", s
	}
	alg, hex, ok := strings.Cut(digest, ":")
	if ok && len(hex) > 12 {
		digest = alg + ":" + hex[:12]
	}
	if repo != "" {
		return repo + "@" + digest
	}
	return digest
}

// stateOf sums up a service's containers: "running (healthy)", "2/3 running", "not running".
func stateOf(cs []deployer.ContainerStatus) string {
	if len(cs) == 0 {
		return "no container"
	}
	running, health := 0, ""
	for _, c := range cs {
		if c.State == "running" {
			running++
		}
		if c.Health != "" && health != "unhealthy" {
			health = c.Health
		}
	}
	s := "running"
	switch {
	case running == 0:
		s = cs[0].State
	case running < len(cs):
		s = fmt.Sprintf("%d/%d running", running, len(cs))
	}
	if health != "" {
		s += " (" + health + ")"
	}
	return s
}

// tone is the colour class of an outcome or a state.
func tone(s string) string {
	switch {
	case s == deployer.OutcomeDeployed, s == deployer.OutcomeUpToDate, strings.HasPrefix(s, "running") && !strings.Contains(s, "unhealthy") && !strings.Contains(s, "/"):
		return "ok"
	case s == deployer.OutcomeRolledBack, s == deployer.OutcomeRejected, s == deployer.OutcomeSkipped, s == deployer.OutcomeWouldDeploy, strings.Contains(s, "starting"), strings.Contains(s, "/"):
		return "warn"
	}
	return "bad"
}
