package handler

import (
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer"
	"github.com/berth-dev/berth/deployer/fault"
)

const deployToken = "deploy-token-0123456789"

// TestAPIDeploy: POST /api/deploy takes DEPLOY_TOKEN, deploys a service through DeployService
// or an image through the push path, and answers errors through the one error writer.
func TestAPIDeploy(t *testing.T) {
	bearer := http.Header{"Authorization": {"Bearer " + deployToken}}
	tests := []struct {
		name   string
		header http.Header
		body   string
		err    error
		status int
		want   string
		asked  [2]string
	}{
		{"no token", nil, `{"service":"shop/web"}`, nil, http.StatusUnauthorized, `"unauthorized"`, [2]string{}},
		{"wrong token", http.Header{"Authorization": {"Bearer nope-nope-nope-nope"}}, `{"service":"shop/web"}`, nil, http.StatusUnauthorized, `"unauthorized"`, [2]string{}},
		{"own image", bearer, `{"service":"shop/web"}`, nil, http.StatusAccepted, `"status":"queued"`, [2]string{"shop/web", ""}},
		{"given image", bearer, `{"service":"web","image":"registry.test/shop/web:1.5"}`, nil, http.StatusAccepted, `"id":"d1"`, [2]string{"web", "registry.test/shop/web:1.5"}},
		{"typo field", bearer, `{"service":"shop/web","imgae":"x:1"}`, nil, http.StatusBadRequest, `unknown field`, [2]string{}},
		{"empty", bearer, `{}`, nil, http.StatusBadRequest, `give \"service\"`, [2]string{}},
		{"unknown service", bearer, `{"service":"shop/nope"}`, fault.Errorf(fault.NotFound, "no project berth serves has a service shop/nope"), http.StatusNotFound,
			`"services":["shop/web","shop/worker"]`, [2]string{}},
		{"API token", http.Header{"Authorization": {"Bearer " + pageToken}}, `{"service":"shop/web"}`, nil, http.StatusForbidden, `API_TOKEN_CAN_DEPLOY`, [2]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, ops, _, _ := newOpsServer(t, func(o *Ops) { o.DeployToken = Secrets{deployToken} })
			ops.services = append(ops.services, deployer.ServiceStatus{Project: "shop", Service: "worker", Image: "registry.test/shop/web:1.4", Deploys: true},
				deployer.ServiceStatus{Project: "shop", Service: "db", Image: "postgres:17"}) // not deployed: not listed
			ops.err = tc.err
			res, body := pageCall(t, http.MethodPost, srv.URL+"/api/deploy", strings.NewReader(tc.body), tc.header)
			if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want %d with %q: %s", res.StatusCode, tc.status, tc.want, body)
			}
			var want [][2]string
			if tc.asked != ([2]string{}) {
				want = [][2]string{tc.asked}
			}
			if got := ops.asked(); len(got) != len(want) || len(got) == 1 && got[0] != want[0] {
				t.Errorf("deploys asked for %v, want %v", got, want)
			}
		})
	}
}

// TestDeployTokenScope: DEPLOY_TOKEN may deploy (within DEPLOY_SERVICES) and nothing else; the
// API token may deploy only with API_TOKEN_CAN_DEPLOY; an image alone deploys every service
// that runs it, as a push, or nothing when one of them is out of scope.
func TestDeployTokenScope(t *testing.T) {
	tests := []struct {
		name      string
		scope     []string
		apiDeploy bool
		token     string
		method    string
		path      string
		body      string
		status    int
		want      string
		asked     string   // service DeployService was asked for
		pushed    []string // repository:tag pushes
	}{
		{"deploy token reads no services", nil, false, deployToken, "GET", "/api/services", "", 401, "unauthorized", "", nil},
		{"deploy token reads no history", nil, false, deployToken, "GET", "/api/deploys", "", 401, "unauthorized", "", nil},
		{"deploy token opens no page", nil, false, deployToken, "GET", "/ui/events", "", 401, "unauthorized", "", nil},
		{"in scope", []string{"shop/web"}, false, deployToken, "POST", "/api/deploy", `{"service":"web"}`, 202, "queued", "shop/web", nil},
		{"project scope", []string{"shop/*"}, false, deployToken, "POST", "/api/deploy", `{"service":"shop/worker"}`, 202, "queued", "shop/worker", nil},
		{"out of scope", []string{"shop/web"}, false, deployToken, "POST", "/api/deploy", `{"service":"shop/worker"}`, 404, `"services":["shop/web"]`, "", nil},
		{"image, all in scope", []string{"shop/*"}, false, deployToken, "POST", "/api/deploy", `{"image":"registry.test/shop/web:1.4"}`, 202, "queued", "", []string{"registry.test/shop/web:1.4 api"}},
		{"image, one out of scope", []string{"shop/web"}, false, deployToken, "POST", "/api/deploy", `{"image":"registry.test/shop/web:1.4"}`, 403, "shop/worker runs", "", nil},
		{"image nothing runs", nil, false, deployToken, "POST", "/api/deploy", `{"image":"registry.test/shop/api:2"}`, 404, `"services":["shop/web","shop/worker"]`, "", nil},
		{"image not a reference", nil, false, deployToken, "POST", "/api/deploy", `{"image":"Shop Web:1"}`, 400, "Shop Web", "", nil},
		{"API token refused", nil, false, pageToken, "POST", "/api/deploy", `{"service":"shop/web"}`, 403, "DEPLOY_TOKEN", "", nil},
		{"API token allowed", nil, true, pageToken, "POST", "/api/deploy", `{"service":"shop/web"}`, 202, "queued", "shop/web", nil},
		{"API token still reads", nil, false, pageToken, "GET", "/api/services", "", 200, "shop/web", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv, ops, _, push := newOpsServer(t, func(o *Ops) {
				o.DeployToken, o.DeployServices, o.APITokenCanDeploy = Secrets{deployToken}, tc.scope, tc.apiDeploy
			})
			ops.services = append(ops.services, deployer.ServiceStatus{Project: "shop", Service: "worker", Image: "registry.test/shop/web:1.4", Deploys: true})
			res, body := pageCall(t, tc.method, srv.URL+tc.path, strings.NewReader(tc.body), http.Header{"Authorization": {"Bearer " + tc.token}})
			if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("status %d, want %d with %q: %s", res.StatusCode, tc.status, tc.want, body)
			}
			asked := ops.asked()
			if tc.asked == "" && len(asked) > 0 || tc.asked != "" && (len(asked) != 1 || asked[0][0] != tc.asked) {
				t.Errorf("DeployService asked for %v, want %q", asked, tc.asked)
			}
			var pushed []string
			for _, r := range push.requests() {
				pushed = append(pushed, r.Repository+":"+r.Tag+" "+r.Source)
			}
			if strings.Join(pushed, ",") != strings.Join(tc.pushed, ",") {
				t.Errorf("pushes %v, want %v", pushed, tc.pushed)
			}
		})
	}
}
