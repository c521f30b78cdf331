package handler

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
)

// ServiceDeployer redeploys one service now, through the same queue, checks and records as a
// push (deployer.DeployService, what `berth deploy` calls), rolls one back by hand (the page's
// button), and says which services a push would deploy (deployer.Plan), so a scoped token is
// checked before anything is queued.
type ServiceDeployer interface {
	DeployService(ctx context.Context, service, ref string) (deployer.Ticket, error)
	RollBackService(ctx context.Context, service string) (deployer.Ticket, error)
	Plan(ctx context.Context, req deployer.Request) (deployer.Ticket, error)
}

// deployNowRequest is the JSON body of POST /api/deploy: a service, an image, or both.
type deployNowRequest struct {
	Service string `json:"service"` // service or project/service; "" deploys every service running Image
	Image   string `json:"image"`   // repository:tag[@digest]; "" is the service's own
}

// deployNowAnswer is the JSON answer of POST /api/deploy.
type deployNowAnswer struct {
	Status string `json:"status"` // "queued"
	deployer.Ticket
}

// deployAccess is who may call POST /api/deploy: DEPLOY_TOKEN (limited to Scope when set) and,
// when APITokenCanDeploy, the API token.
type deployAccess struct {
	deployTokens Secrets
	scope        []string // project/service or project/*; empty: every service
	apiToken     Secrets  // admitted only when apiCanDeploy
	apiCanDeploy bool
}

// allows reports whether key (project/service) is in scope (nil scope: all).
func allows(scope []string, key string) bool {
	project, _, _ := strings.Cut(key, "/")
	return len(scope) == 0 || slices.Contains(scope, key) || slices.Contains(scope, project+"/*")
}

// check authenticates r and returns the scope its token may deploy (nil: every service). The
// API token is refused with 403 unless allowed: it is not a guess, so it must not count as one.
func (a deployAccess) check(r *http.Request) (scope []string, err error) {
	presented, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	switch {
	case ok && a.deployTokens.Equal(presented):
		return a.scope, admit(r, nil)
	case ok && a.apiToken.Equal(presented):
		if err := admit(r, nil); err != nil {
			return nil, err
		}
		if !a.apiCanDeploy {
			return nil, fault.Errorf(fault.Forbidden, "API_TOKEN may not deploy through /api/deploy; give CI a DEPLOY_TOKEN, or set API_TOKEN_CAN_DEPLOY=true")
		}
		return nil, nil
	}
	return nil, admit(r, errUnauthorized)
}

// knownServices is a 404 of POST /api/deploy: the answer lists the services the caller may deploy.
type knownServices struct {
	err   error
	known []string
}

func (e knownServices) Error() string                { return e.err.Error() }
func (e knownServices) Unwrap() error                { return e.err }
func (e knownServices) answerFields() map[string]any { return map[string]any{"services": e.known} }

// handleDeployNow is POST /api/deploy, for CI: deploy one service now (with its own image or
// the one given), or, given an image only, every service that runs it, as a push would. It
// answers 202 with the ticket once the deploy is queued.
func handleDeployNow(access deployAccess, d ServiceDeployer, push Deployer, services ServiceLister, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		attrs := []any{"remote", r.RemoteAddr, "path", r.URL.Path}
		scope, err := access.check(r)
		var req deployNowRequest
		if err == nil {
			req, err = decodeDeployNow(r.Body)
		}
		var t deployer.Ticket
		if err == nil {
			attrs = append(attrs, "service", req.Service, "image", req.Image)
			t, err = deployNow(r.Context(), req, scope, d, push, services)
		}
		if err != nil {
			writeError(w, log, webhookRefused, err, attrs...)
			return
		}
		log.Info("deploy requested", append(attrs, "deploy", t.ID, "services", t.Services)...)
		writeJSON(w, http.StatusAccepted, deployNowAnswer{Status: "queued", Ticket: t})
	})
}

// deployNow queues what req asks for, within scope. Services outside the scope are refused
// before anything is queued; a service or image no service runs is a 404 listing the services
// the caller may deploy.
func deployNow(ctx context.Context, req deployNowRequest, scope []string, d ServiceDeployer, push Deployer, services ServiceLister) (deployer.Ticket, error) {
	known := func(err error) error { return knownServices{err: err, known: deployable(ctx, services, scope)} }
	if req.Service == "" {
		pr, err := deployer.RequestFor(req.Image)
		if err != nil {
			return deployer.Ticket{}, err
		}
		pr.Source = "api"
		plan, err := d.Plan(ctx, pr)
		if err != nil {
			return deployer.Ticket{}, err
		}
		if len(plan.Services) == 0 {
			return deployer.Ticket{}, known(fault.Errorf(fault.NotFound, "no service berth serves runs %s", plan.Image))
		}
		if out := slices.DeleteFunc(slices.Clone(plan.Services), func(k string) bool { return allows(scope, k) }); len(out) > 0 {
			return deployer.Ticket{}, fault.Errorf(fault.Forbidden, "%s runs %s too, and DEPLOY_SERVICES=%s does not include it; nothing was deployed",
				strings.Join(out, ", "), plan.Image, strings.Join(scope, ","))
		}
		return push.Deploy(ctx, pr)
	}
	service := req.Service
	if len(scope) > 0 {
		key, err := scoped(ctx, services, scope, service)
		if err != nil {
			return deployer.Ticket{}, known(err)
		}
		service = key
	}
	t, err := d.DeployService(ctx, service, req.Image)
	if fault.KindOf(err) == fault.NotFound {
		err = known(err)
	}
	return t, err
}

// scoped resolves service (service or project/service) to the one project/service in scope
// it names; a service out of scope is answered like an unknown one, so a scoped token cannot
// probe for what else runs.
func scoped(ctx context.Context, services ServiceLister, scope []string, service string) (string, error) {
	var found []string
	for _, k := range deployable(ctx, services, scope) {
		if k == service || strings.HasSuffix(k, "/"+service) && !strings.Contains(service, "/") {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return "", fault.Errorf(fault.NotFound, "this token may not deploy a service %s (DEPLOY_SERVICES)", service)
	case 1:
		return found[0], nil
	}
	return "", fault.Errorf(fault.Invalid, "service %s is in several projects (%s); name one as project/service", service, strings.Join(found, ", "))
}

// deployable lists the project/service of every service berth deploys that scope allows.
func deployable(ctx context.Context, services ServiceLister, scope []string) []string {
	out := []string{}
	if services == nil {
		return out
	}
	all, err := services.Services(ctx)
	if err != nil {
		return out
	}
	for _, s := range all {
		if k := s.Project + "/" + s.Service; s.Deploys && allows(scope, k) {
			out = append(out, k)
		}
	}
	return out
}

// decodeDeployNow reads one deployNowRequest and refuses anything else: unknown fields (a
// typo would otherwise deploy the wrong image silently), trailing data, neither service nor image.
func decodeDeployNow(body io.Reader) (deployNowRequest, error) {
	var req deployNowRequest
	raw, err := io.ReadAll(io.LimitReader(body, maxBody))
	if err != nil {
		return req, fmt.Errorf("read body: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, badRequest(`the body is not {"service": "project/service"} or {"image": "repository:tag"}: %v`, err)
	}
	if dec.More() {
		return req, badRequest("the body has data after its JSON object")
	}
	if req.Service == "" && req.Image == "" {
		return req, badRequest(`give "service" (project/service), "image" (repository:tag, deploys every service that runs it), or both`)
	}
	return req, nil
}
