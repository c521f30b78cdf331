package handler

import (
	"context"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/handler/web"
)

// ServiceLister reports what runs for every service berth serves.
type ServiceLister interface {
	Services(ctx context.Context) ([]deployer.ServiceStatus, error)
}

// DeployHistory returns the newest deploy records, newest first (all when n <= 0).
type DeployHistory interface {
	Records(n int) []deployer.Record
}

// Ops are the dependencies of the operator endpoints and the status page (web); each endpoint is off while its own is unset.
type Ops struct {
	APIToken Secret         // bearer token of the status API and the page; empty turns them off
	Services ServiceLister  // /api/services
	History  DeployHistory  // /api/deploys
	Images   ImageInspector // /api/images/inspect, behind Config.APIToken
	// Deployer deploys a service now: POST /api/deploy and the status page's buttons.
	Deployer ServiceDeployer
	Approver Approver // POST /api/approve: watch mode's held updates
	// DeployToken may only POST /api/deploy, and only the DeployServices (project/service or
	// project/*; empty: all). The API token may too when APITokenCanDeploy.
	DeployToken       Secrets
	DeployServices    []string
	APITokenCanDeploy bool
	// Events, when set, streams finished deploys to the status page (web.Hub.Publish is the
	// deployer's OnRecord's to call).
	Events  *web.Hub
	Metrics *Metrics // counts webhooks; nil counts nothing
	// ServeMetrics serves /metrics on this server (off when METRICS_ADDR gives it its own).
	ServeMetrics bool
}

// servicesAnswer is the JSON of GET /api/services.
type servicesAnswer struct {
	Services []deployer.ServiceStatus `json:"services"`
}

// deploysAnswer is the JSON of GET /api/deploys.
type deploysAnswer struct {
	Deploys []deployer.Record `json:"deploys"`
}

func handleServices(s ServiceLister, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		all, err := s.Services(r.Context())
		if err != nil {
			writeError(w, log, webhookRefused, err, "path", r.URL.Path)
			return
		}
		writeJSON(w, http.StatusOK, servicesAnswer{Services: all})
	})
}

// handleService answers GET /api/services/{name}: name is "service" or "project/service".
func handleService(s ServiceLister, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		all, err := s.Services(r.Context())
		if err != nil {
			writeError(w, log, webhookRefused, err, "path", r.URL.Path)
			return
		}
		var found []deployer.ServiceStatus
		for _, st := range all {
			if st.Service == name || st.Project+"/"+st.Service == name {
				found = append(found, st)
			}
		}
		switch len(found) {
		case 0:
			writeError(w, log, webhookRefused, fault.Errorf(fault.NotFound, "no service %s in the projects berth serves", name), "path", r.URL.Path)
		case 1:
			writeJSON(w, http.StatusOK, found[0])
		default:
			writeError(w, log, webhookRefused, fault.Errorf(fault.Conflict, "service %s is in %d projects; ask for project/%s", name, len(found), name), "path", r.URL.Path)
		}
	})
}

// handleDeploys answers GET /api/deploys[?limit=N], newest first, 100 by default.
func handleDeploys(h DeployHistory, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				writeError(w, log, webhookRefused, badRequest("limit=%q is not a positive number", v), "path", r.URL.Path)
				return
			}
			limit = n
		}
		writeJSON(w, http.StatusOK, deploysAnswer{Deploys: h.Records(limit)})
	})
}
