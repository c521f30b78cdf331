package deployer

import (
	"testing"

	"github.com/berth-dev/berth/deployer/deployertest"
)

// TestEnvParityWithComposeCLI loads projects whose values come from where users keep them — a
// `${VAR:?}` in an image and a bind mount answered by the project's .env, COMPOSE_FILE and
// COMPOSE_PROFILES in that .env, an env_file, and an --env-file — through the compose CLI (up -d)
// and through berth (a redeploy). Every loading pass must see the same environment: berth
// recreates the service without a load error, and compose's next up -d changes nothing.
func TestEnvParityWithComposeCLI(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("envparity")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	app := "services:\n  web:\n    image: acme/web:${WEB_TAG:?set WEB_TAG}\n    init: true\n    profiles: [on]\n" +
		"    env_file: [web.env]\n    environment: {MODE: \"${MODE:?set MODE}\"}\n" +
		"    volumes: [\"${DATA_DIR:?set DATA_DIR}:/data\", {type: bind, source: ./conf, target: /conf, bind: {create_host_path: true}}]\n"
	for _, c := range []struct {
		name     string
		files    map[string]string
		envFiles []string // --env-file, as berth's Spec.EnvFiles
	}{
		{"dotenv", map[string]string{
			".env":     "COMPOSE_FILE=app.yaml\nCOMPOSE_PROFILES=on\nWEB_TAG=" + tag + "\nMODE=dotenv\nDATA_DIR=./data\n",
			"app.yaml": app, "web.env": "FROM_FILE=yes\n",
		}, nil},
		{"env-file", map[string]string{
			// compose reads prod.env instead of .env; .env's values would match no push.
			"prod.env":     "COMPOSE_PROFILES=on\nWEB_TAG=" + tag + "\nMODE=prod\nDATA_DIR=./data\n",
			".env":         "WEB_TAG=not-pushed\nMODE=ignored\nDATA_DIR=./ignored\n",
			"compose.yaml": app, "web.env": "FROM_FILE=yes\n",
		}, []string{"prod.env"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newParityProject(t, eng, cli, c.files)
			var flags []string
			spec := p.spec()
			for _, f := range c.envFiles {
				flags = append(flags, "--env-file", f)
				spec.EnvFiles = append(spec.EnvFiles, p.dir+"/"+f)
			}
			p.compose(append(flags, "up", "-d", "--quiet-pull")...)
			ref := p.containers()
			if len(ref) != 1 {
				t.Fatalf("compose made %d containers, want 1", len(ref))
			}
			requireDeployed(t, p.deploy(spec, "acme/web", tag), "web")
			got := p.containers()
			for name, before := range ref {
				after, ok := got[name]
				if !ok || after.ID == before.ID {
					t.Fatalf("%s was not recreated by berth", name)
				}
				diffContainers(t, name, before, after)
			}
			// --env-file is a flag of compose itself, so it goes before up.
			p.compose(append(flags, "up", "-d")...)
			for name, c := range p.containers() {
				if got[name].ID != c.ID {
					t.Errorf("compose up -d recreated %s after berth's deploy", name)
				}
			}
		})
	}
}
