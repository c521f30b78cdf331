package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDeployTokenConfig: DEPLOY_TOKEN (or its _FILE), DEPLOY_SERVICES and API_TOKEN_CAN_DEPLOY
// load in their valid forms, and each mistake stops berth at start with one line naming the fix.
func TestDeployTokenConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "deploy-token")
	if err := os.WriteFile(file, []byte("ci-token-from-a-file-0123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const api, ci = "api-token-0123456789", "ci-token-0123456789"
	for _, tc := range []struct {
		env  map[string]string
		want string // "" loads
	}{
		{map[string]string{"DEPLOY_TOKEN": ci}, ""},
		{map[string]string{"DEPLOY_TOKEN_FILE": file, "DEPLOY_SERVICES": "shop/web, shop/worker,blog/*"}, ""},
		{map[string]string{"API_TOKEN": api, "API_TOKEN_CAN_DEPLOY": "true"}, ""},
		{map[string]string{"DEPLOY_TOKEN": "short"}, "DEPLOY_TOKEN value 1 is too short"},
		{map[string]string{"DEPLOY_TOKEN": ci, "DEPLOY_TOKEN_FILE": file}, "DEPLOY_TOKEN and DEPLOY_TOKEN_FILE are both set"},
		{map[string]string{"API_TOKEN": api, "DEPLOY_TOKEN": api}, "also an API_TOKEN value"},
		{map[string]string{"DEPLOY_SERVICES": "shop/web"}, "DEPLOY_SERVICES=shop/web is set but DEPLOY_TOKEN is not"},
		{map[string]string{"DEPLOY_TOKEN": ci, "DEPLOY_SERVICES": "web"}, `"web" is not project/service or project/*`},
		{map[string]string{"DEPLOY_TOKEN": ci, "DEPLOY_SERVICES": "shop/web,"}, `"" is not project/service`},
		{map[string]string{"API_TOKEN_CAN_DEPLOY": "true"}, "API_TOKEN_CAN_DEPLOY=true but API_TOKEN is not set"},
		{map[string]string{"API_TOKEN_CAN_DEPLOY": "yes please"}, "API_TOKEN_CAN_DEPLOY"},
	} {
		tc.env["SECRET"], tc.env["OWNER"] = "0123456789abcdef0123", "acme"
		c, err := Load(func(k string) string { return tc.env[k] })
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%v: %v, want it to load", tc.env, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n")):
			t.Errorf("%v: error %v, want one line containing %q", tc.env, err, tc.want)
		case tc.want == "" && strings.Contains(tc.env["DEPLOY_SERVICES"], " ") && c.DeployServices[1] != "shop/worker":
			t.Errorf("DEPLOY_SERVICES entries kept their spaces: %q", c.DeployServices)
		}
	}
}
