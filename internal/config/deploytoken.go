package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/berth-dev/berth/handler"
)

// deployScopePattern is one DEPLOY_SERVICES entry: project/service, or project/* for every
// service of a project. A bare service name is refused: it would silently widen the scope to
// a service of that name in any project added later.
var deployScopePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*/([a-zA-Z0-9][a-zA-Z0-9._-]*|\*)$`)

// loadDeployToken reads DEPLOY_TOKEN (or DEPLOY_TOKEN_FILE) and checks it with DEPLOY_SERVICES
// and API_TOKEN_CAN_DEPLOY: a scope without a token, or a token that is also the API token,
// is a mistake the operator must hear of at start, not a door left open.
func (c *Config) loadDeployToken(getenv func(string) string) error {
	token, err := ReadSecret(getenv, "DEPLOY_TOKEN")
	if err != nil {
		return err
	}
	c.DeployToken = handler.Secret(strings.TrimSpace(token))
	for i, s := range handler.ParseSecrets(string(c.DeployToken)) {
		if len(s) < minSecretLen {
			return fmt.Errorf("DEPLOY_TOKEN value %d is too short (%d characters); use at least %d, e.g. from `openssl rand -hex 24`", i+1, len(s), minSecretLen)
		}
		if c.Webhooks.APIToken.Equal(string(s)) {
			return fmt.Errorf("DEPLOY_TOKEN value %d is also an API_TOKEN value; give CI a token of its own (it may only deploy), or set API_TOKEN_CAN_DEPLOY=true and leave DEPLOY_TOKEN unset", i+1)
		}
	}
	if len(c.DeployServices) > 0 && c.DeployToken == "" {
		return fmt.Errorf("DEPLOY_SERVICES=%s is set but DEPLOY_TOKEN is not; DEPLOY_SERVICES limits what DEPLOY_TOKEN may deploy", strings.Join(c.DeployServices, ","))
	}
	for i, s := range c.DeployServices {
		c.DeployServices[i] = strings.TrimSpace(s)
		if !deployScopePattern.MatchString(c.DeployServices[i]) {
			return fmt.Errorf("DEPLOY_SERVICES=%s: %q is not project/service or project/* (e.g. DEPLOY_SERVICES=shop/web,shop/worker)", strings.Join(c.DeployServices, ","), s)
		}
	}
	if c.APITokenCanDeploy && c.APIToken == "" {
		return fmt.Errorf("API_TOKEN_CAN_DEPLOY=true but API_TOKEN is not set; set API_TOKEN, or use DEPLOY_TOKEN for CI")
	}
	return nil
}
