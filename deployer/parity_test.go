package deployer

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
)

// parityProject is a compose project created by a real compose CLI for a parity test.
type parityProject struct {
	t    *testing.T
	eng  *client.Client
	cli  string
	dir  string
	name string
}

// newParityProject writes files (compose.yaml and friends) into a fresh directory named after a
// unique project and registers `compose down -v` for cleanup. Nothing is created yet.
func newParityProject(t *testing.T, eng *client.Client, cli string, files map[string]string) *parityProject {
	t.Helper()
	name := strings.ReplaceAll(deployertest.UniqueTag("parity"), "-", "")
	dir := filepath.Join(t.TempDir(), name)
	for path, body := range files {
		full := filepath.Join(dir, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(strings.ReplaceAll(body, "@PROJECT@", name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &parityProject{t: t, eng: eng, cli: cli, dir: dir, name: name}
	t.Cleanup(func() { p.compose("down", "-v", "-t", "1", "--remove-orphans") })
	return p
}

func (p *parityProject) compose(args ...string) string {
	p.t.Helper()
	return deployertest.Compose(p.t, p.cli, p.dir, args...)
}

// containers inspects every container of the project by name.
func (p *parityProject) containers() map[string]container.InspectResponse {
	p.t.Helper()
	ctx := context.Background()
	res, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("label", compose.LabelProject+"="+p.name)})
	if err != nil {
		p.t.Fatal(err)
	}
	out := map[string]container.InspectResponse{}
	for _, c := range res.Items {
		ins, err := p.eng.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil {
			p.t.Fatal(err)
		}
		out[strings.TrimPrefix(ins.Container.Name, "/")] = ins.Container
	}
	return out
}

// deploy runs berth's deployer for a push of image:tag against the project and waits for it;
// it returns the records of the deploys it set off.
func (p *parityProject) deploy(spec compose.Spec, repo, tag string) []Record {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var recs []Record
	d := New(ctx, p.eng, Options{Projects: []compose.Spec{spec}, Owners: []string{"acme"}, ForceRecreate: true, OnRecord: func(r Record) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
	}})
	if _, err := d.Deploy(ctx, Request{Source: "test", Repository: repo, Tag: tag}); err != nil {
		p.t.Fatalf("deploy %s:%s: %v", repo, tag, err)
	}
	if err := d.Wait(ctx); err != nil {
		p.t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	return recs
}

// spec is the compose.Spec the compose CLI would see when run in the project directory.
func (p *parityProject) spec() compose.Spec { return compose.Spec{Dir: p.dir} }

// upChangesNothing runs the CLI's `up -d` and fails if it recreated any container.
func (p *parityProject) upChangesNothing(args ...string) {
	p.t.Helper()
	before := p.containers()
	out := p.compose(append([]string{"up", "-d"}, args...)...)
	after := p.containers()
	for name, c := range after {
		if b, ok := before[name]; ok && b.ID != c.ID {
			p.t.Errorf("%s up -d recreated %s (berth's container did not look like compose's):\n%s", filepath.Base(p.cli), name, out)
		}
	}
	for name := range before {
		if _, ok := after[name]; !ok {
			p.t.Errorf("%s up -d removed %s", filepath.Base(p.cli), name)
		}
	}
}

func requireDeployed(t *testing.T, recs []Record, want ...string) {
	t.Helper()
	var got []string
	for _, r := range recs {
		if r.Outcome != OutcomeDeployed {
			t.Fatalf("deploy of %s: %s: %s", r.Service, r.Outcome, r.Error)
		}
		got = append(got, r.Service)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("deployed services %v, want %v", got, want)
	}
}

// normalized flattens what compose decides about a container into path → value, leaving out
// what legitimately differs between two creations of the same service: ids, timestamps,
// state, ephemeral addresses, the daemon's own files, and the replace label.
func normalized(t *testing.T, c container.InspectResponse, ids map[string]string) map[string]string {
	t.Helper()
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	raw := string(b)
	for id, placeholder := range ids {
		raw = strings.ReplaceAll(raw, id, placeholder)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"Id", "Created", "State", "ResolvConfPath", "HostnamePath", "HostsPath", "LogPath",
		"RestartCount", "GraphDriver", "SizeRw", "SizeRootFs", "ExecIDs", "Node", "ImageManifestDescriptor", "Storage"} {
		delete(m, k)
	}
	cfg := m["Config"].(map[string]any)
	if h, _ := cfg["Hostname"].(string); h == c.ID[:12] {
		cfg["Hostname"] = "<short id>"
	}
	labels := cfg["Labels"].(map[string]any)
	delete(labels, compose.LabelReplace)
	if deps, _ := labels[compose.LabelDependsOn].(string); deps != "" {
		parts := strings.Split(deps, ",")
		slices.Sort(parts)
		labels[compose.LabelDependsOn] = strings.Join(parts, ",")
	}
	// compose builds Env and Ulimits from Go maps: their order is random even between its own runs.
	if env, ok := cfg["Env"].([]any); ok {
		sort.Slice(env, func(i, j int) bool { return fmt.Sprint(env[i]) < fmt.Sprint(env[j]) })
	}
	host := m["HostConfig"].(map[string]any)
	if u, ok := host["Ulimits"].([]any); ok {
		sortBy(u, "Name")
	}
	// An anonymous volume is declared without a source at first creation and re-mounted by name
	// on every recreate (compose and berth alike); which volume it is shows in .Mounts.
	if ms, ok := host["Mounts"].([]any); ok {
		host["Mounts"] = slices.DeleteFunc(ms, func(x any) bool {
			mt := x.(map[string]any)
			src, _ := mt["Source"].(string)
			return mt["Type"] == "volume" && (src == "" || anonymousVolume.MatchString(src))
		})
		if len(host["Mounts"].([]any)) == 0 {
			delete(host, "Mounts")
		}
	}
	sortBy(host["Mounts"], "Target")
	if b, ok := host["Binds"].([]any); ok {
		sort.Slice(b, func(i, j int) bool { return fmt.Sprint(b[i]) < fmt.Sprint(b[j]) })
	}
	sortBy(m["Mounts"], "Destination")
	if ms, ok := m["Mounts"].([]any); ok {
		for _, x := range ms {
			delete(x.(map[string]any), "Mode") // "z" when the daemon made the volume for a first creation
		}
	}
	ns := m["NetworkSettings"].(map[string]any)
	nets, _ := ns["Networks"].(map[string]any)
	for _, v := range nets {
		ep := v.(map[string]any)
		for _, k := range []string{"EndpointID", "Gateway", "IPAddress", "IPPrefixLen", "IPv6Gateway", "GlobalIPv6Address",
			"GlobalIPv6PrefixLen", "MacAddress", "DNSNames"} {
			delete(ep, k)
		}
		if as, ok := ep["Aliases"].([]any); ok {
			ep["Aliases"] = slices.DeleteFunc(as, func(a any) bool { return a == c.ID[:12] })
		}
	}
	m["NetworkSettings"] = map[string]any{"Networks": nets}
	out := map[string]string{}
	flatten("", m, out)
	return out
}

var anonymousVolume = regexp.MustCompile(`^[0-9a-f]{64}$`)

func sortBy(v any, key string) {
	if l, ok := v.([]any); ok {
		sort.Slice(l, func(i, j int) bool {
			return fmt.Sprint(l[i].(map[string]any)[key]) < fmt.Sprint(l[j].(map[string]any)[key])
		})
	}
}

func flatten(prefix string, v any, out map[string]string) {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			flatten(prefix+"."+k, e, out)
		}
		if len(x) == 0 {
			out[prefix] = "{}"
		}
	default:
		b, _ := json.Marshal(x)
		out[prefix] = string(b)
	}
}

// diffContainers reports every normalized field where berth's container differs from compose's.
// ids maps container ids to placeholders, for references to containers that were replaced.
func diffContainers(t *testing.T, name string, compose, berth container.InspectResponse, ids ...map[string]string) {
	t.Helper()
	var a, b map[string]string
	if len(ids) == 2 {
		a, b = normalized(t, compose, ids[0]), normalized(t, berth, ids[1])
	} else {
		a, b = normalized(t, compose, nil), normalized(t, berth, nil)
	}
	var diffs []string
	for _, k := range slices.Sorted(maps.Keys(a)) {
		if a[k] != b[k] {
			diffs = append(diffs, fmt.Sprintf("  %s: compose %s, berth %s", k, a[k], b[k]))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("  %s: compose <absent>, berth %s", k, b[k]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s differs from compose's container:\n%s", name, strings.Join(diffs, "\n"))
	}
}

// realisticProject is the project the parity suite deploys: a proxy in front of two web
// replicas, a worker on the same image, a database with a named volume, and a tool service
// behind an inactive profile that must never be deployed.
const realisticProject = `name: @PROJECT@
services:
  proxy:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
    ports: ["127.0.0.1::8080", "127.0.0.1::9000-9001/udp"]
    networks: [front]
    depends_on: [web]
    restart: unless-stopped
  web:
    image: acme/web:${WEB_TAG}
    init: true
    deploy:
      replicas: 2
      resources:
        limits: {memory: 64M, cpus: "0.5", pids: 100}
        reservations: {memory: 16M}
    ports: ["127.0.0.1::80"]
    networks:
      front: {aliases: [app, www]}
      back: {}
    environment:
      GREETING: ${GREETING:-hello}
      MODE: web
    env_file: [web.env]
    labels: {acme.role: web}
    volumes:
      - /scratch
      - type: tmpfs
        target: /run/cache
        tmpfs: {size: 1048576}
      - @STATIC@
    healthcheck:
      test: ["CMD", "wget", "-q", "-O-", "http://127.0.0.1/"]
      interval: 5s
      timeout: 2s
      retries: 3
      start_period: 1s
    logging:
      driver: json-file
      options: {max-size: 1m, max-file: "2"}
    restart: on-failure:3
    stop_grace_period: 3s
    stop_signal: SIGTERM
    depends_on:
      db: {condition: service_started}
    cap_drop: [NET_RAW]
    cap_add: [SYS_PTRACE]
    ulimits: {nofile: {soft: 1024, hard: 2048}, nproc: 512}
    sysctls: {net.core.somaxconn: 1024}
    shm_size: 32m
    extra_hosts: ["gateway.test:10.0.0.1"]
    dns_search: [example.test]
    security_opt: [no-new-privileges:true]
    tmpfs: [/tmp:size=1m]
    user: "0:0"
    working_dir: /www
  worker:
    image: acme/web:${WEB_TAG}
    init: true
    command: ["sh", "-c", "sleep 3600"]
    hostname: worker
    domainname: example.test
    networks: [back]
    depends_on:
      db: {condition: service_started, restart: true}
    read_only: true
    mem_limit: 32m
    cpus: 0.25
  db:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
    volumes: [dbdata:/var/lib/db]
    networks:
      back: {aliases: [database]}
  tools:
    image: acme/web:${WEB_TAG}
    profiles: [tools]
    command: ["true"]
networks:
  front: {}
  back: {}
volumes:
  dbdata: {}
`

// projectFor is realisticProject for a compose release. Both releases get the short-syntax
// bind, which they hash differently (COMPOSE-FACTS §2): berth must follow the one that made
// the project.
func projectFor(string) string {
	return strings.ReplaceAll(realisticProject, "@STATIC@", "./static:/www/static:ro")
}

// composeReleases are the compose releases berth is checked against: the newest, the one most
// installs still run (v5.6.0), and the last v2 (another config hash rule and compose-go).
var composeReleases = []string{"v5.6.0", "v2.40.3", "v5.7.1"}

// TestParityWithComposeCLI is the compose-fidelity suite: for each compose release, compose
// creates the project, berth redeploys the services a push concerns, and then (a) the same CLI's
// `up -d` recreates nothing and (b) berth's containers inspect like the ones compose made.
func TestParityWithComposeCLI(t *testing.T) {
	eng := deployertest.Engine(t)
	for _, version := range composeReleases {
		t.Run(version, func(t *testing.T) {
			t.Parallel() // a project and tag of its own per release
			cli := deployertest.ComposeCLI(t, version)
			tag := deployertest.UniqueTag("parity")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1", `VOLUME ["/scratch"]`)
			files := map[string]string{
				"compose.yaml": projectFor(version),
				".env":         "WEB_TAG=" + tag + "\n",
				"web.env":      "FROM_FILE=yes\nGREETING=ignored\n",
				"static/x":     "x",
			}
			p := newParityProject(t, eng, cli, files)
			p.compose("up", "-d", "--quiet-pull")
			ref := p.containers()
			if len(ref) != 5 {
				t.Fatalf("compose made %d containers, want 5 (proxy, 2×web, worker, db): %v", len(ref), slices.Sorted(maps.Keys(ref)))
			}
			p.compose("exec", "-T", "--index", "2", "web", "sh", "-c", "echo kept > /scratch/marker")

			// Redeploy on the very same image: every difference left is berth's doing.
			recs := p.deploy(p.spec(), "acme/web", tag)
			requireDeployed(t, recs, "web", "worker")
			got := p.containers()
			for name, c := range ref {
				b, ok := got[name]
				if !ok {
					t.Errorf("%s is gone after berth's deploy", name)
					continue
				}
				recreated := strings.Contains(name, "-web-") || strings.Contains(name, "-worker-")
				if recreated == (b.ID == c.ID) {
					t.Errorf("%s: recreated=%t, want %t", name, b.ID != c.ID, recreated)
				}
				diffContainers(t, name, c, b)
				if recreated {
					want := strings.TrimPrefix(name, p.name+"-")
					if r := b.Config.Labels[compose.LabelReplace]; r != want {
						t.Errorf("%s: replace label %q, want %q", name, r, want)
					}
				}
			}
			p.upChangesNothing()
			if out := p.compose("exec", "-T", "--index", "2", "web", "cat", "/scratch/marker"); strings.TrimSpace(out) != "kept" {
				t.Errorf("anonymous volume of web-2 lost its data: %q", out)
			}

			// A real push: new image, new image label, and compose still agrees.
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 2", `VOLUME ["/scratch"]`)
			requireDeployed(t, p.deploy(p.spec(), "acme/web", tag), "web", "worker")
			p.upChangesNothing()
			ps := p.compose("ps", "--format", "{{.Name}} {{.State}}")
			if strings.Count(ps, "running") != 5 || strings.Contains(ps, "tools") {
				t.Errorf("compose ps after berth's deploy:\n%s", ps)
			}
		})
	}
}

// TestParityBerthFirst is the reverse direction: berth creates a service nothing runs yet
// (networks, volumes and containers), then compose takes the project over without recreating
// berth's containers, and its own fresh containers for the service look the same.
func TestParityBerthFirst(t *testing.T) {
	eng := deployertest.Engine(t)
	for _, version := range composeReleases {
		t.Run(version, func(t *testing.T) {
			t.Parallel() // a project and tag of its own per release
			cli := deployertest.ComposeCLI(t, version)
			tag := deployertest.UniqueTag("parityrev")
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1", `VOLUME ["/scratch"]`)
			p := newParityProject(t, eng, cli, map[string]string{
				"compose.yaml": projectFor(version),
				".env":         "WEB_TAG=" + tag + "\n",
				"web.env":      "FROM_FILE=yes\n",
				"static/x":     "x",
			})
			d := New(context.Background(), eng, Options{Projects: []compose.Spec{p.spec()}, Owners: []string{"acme"}, ForceRecreate: true,
				ComposeVersion: strings.TrimPrefix(version, "v")})
			var mu sync.Mutex
			var recs []Record
			d.onRecord = func(r Record) { mu.Lock(); recs = append(recs, r); mu.Unlock() }
			if _, err := d.Deploy(context.Background(), Request{Source: "test", Repository: "acme/web", Tag: tag}); err != nil {
				t.Fatal(err)
			}
			if err := d.Wait(context.Background()); err != nil {
				t.Fatal(err)
			}
			requireDeployed(t, recs, "web", "worker")
			berth := p.containers()
			if len(berth) != 3 {
				t.Fatalf("berth made %v, want web-1, web-2, worker-1", slices.Sorted(maps.Keys(berth)))
			}
			p.upChangesNothing()
			p.compose("up", "-d", "--force-recreate", "web", "worker")
			composed := p.containers()
			for name, b := range berth {
				diffContainers(t, name, composed[name], b)
			}
		})
	}
}

// fieldsProject exercises the less common service attributes: shared namespaces and volumes,
// static addresses, an external network, devices, secrets and configs, and dependents.
const fieldsProject = `name: @PROJECT@
services:
  app:
    image: acme/web:${WEB_TAG}
    init: true
    ports: ["127.0.0.1::80", "127.0.0.1::7000-7001/udp", "127.0.0.1:0:81/tcp"]
    expose: [@EXPOSE@, "4000/udp"]
    networks:
      fixed: {ipv4_address: "${SUBNET}.10", aliases: [fixed-app]}
      outside: {}
    devices: ["/dev/null:/dev/xnull:rwm"]
    dns: [10.0.0.53]
    dns_opt: ["ndots:2"]
    group_add: ["1234"]
    oom_score_adj: 100
    cpu_shares: 512
    mem_limit: 64m
    memswap_limit: 128m
    stdin_open: true
    tty: true
    hostname: app
    domainname: example.test
    stop_signal: SIGINT
    healthcheck: {disable: true}
    restart: always
    ipc: shareable
    secrets: [token, {source: token, target: other-token}]
    configs: [{source: app_conf, target: /etc/app.conf}, app_conf]
    volumes:
      - {type: volume, source: data, target: /data}
      - {type: bind, source: ./conf, target: /conf, bind: {propagation: rprivate}}
  sidecar:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
    network_mode: service:app
    ipc: service:app
    volumes_from: [app]
    depends_on: [app]
  restarter:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
    networks: [fixed]
    depends_on:
      app: {condition: service_started, restart: true}
  isolated:
    image: busybox:1
    init: true
    command: ["sleep", "3600"]
    network_mode: none
    security_opt: [systempaths=unconfined]
networks:
  fixed:
    ipam: {config: [{subnet: "${SUBNET}.0/24"}]}
  outside:
    external: true
    name: ${OUTSIDE}
secrets:
  token: {file: ./token.txt}
configs:
  app_conf: {file: ./app.conf}
volumes:
  data: {}
`

// TestParityFields redeploys a service using many attributes, with services sharing its
// namespaces and one restarting with it, and checks the result against compose.
func TestParityFields(t *testing.T) {
	eng := deployertest.Engine(t)
	for _, version := range composeReleases {
		t.Run(version, func(t *testing.T) {
			// Not in parallel: the project has a network with a fixed subnet, which two releases
			// cannot create at once (CI: "Pool overlaps").
			cli := deployertest.ComposeCLI(t, version)
			tag := deployertest.UniqueTag("fields")
			// compose v2.40.3 sends an expose range as one literal port key ("3000-3001/tcp"),
			// which the daemon stores and newer clients cannot even parse back; v5 and berth
			// expand it into one port each. So the range is only compared against v5.
			expose := `"3000-3001"`
			if version == "v2.40.3" {
				expose = `"3000"`
			}
			deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
			ctx := context.Background()
			outside := "ext" + strings.ReplaceAll(tag, "-", "")
			if _, err := eng.NetworkCreate(ctx, outside, client.NetworkCreateOptions{}); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = eng.NetworkRemove(ctx, outside, client.NetworkRemoveOptions{}) })
			subnet := fmt.Sprintf("10.%d.%d", 200+tag[len(tag)-1]%50, tag[len(tag)-2])
			p := newParityProject(t, eng, cli, map[string]string{
				"compose.yaml": strings.ReplaceAll(fieldsProject, "@EXPOSE@", expose),
				".env":         "WEB_TAG=" + tag + "\nSUBNET=" + subnet + "\nOUTSIDE=" + outside + "\n",
				"token.txt":    "s3cret\n",
				"app.conf":     "answer=42\n",
				"conf/x":       "x",
			})
			p.compose("up", "-d", "--quiet-pull")
			ref := p.containers()
			requireDeployed(t, p.deploy(p.spec(), "acme/web", tag), "app")
			got := p.containers()
			app := p.name + "-app-1"
			// The sidecar's config hash holds app's container id, so it differs exactly when app's
			// id does; compose's verdict on it is the up -d check below.
			sidecar := p.name + "-sidecar-1"
			ids := []map[string]string{
				{ref[app].ID: "<app>", ref[sidecar].Config.Labels[compose.LabelConfigHash]: "<sidecar hash>"},
				{got[app].ID: "<app>", got[sidecar].Config.Labels[compose.LabelConfigHash]: "<sidecar hash>"},
			}
			for name, c := range ref {
				b := got[name]
				wantNew := strings.HasSuffix(name, "-app-1") || strings.HasSuffix(name, "-sidecar-1")
				if wantNew == (b.ID == c.ID) {
					t.Errorf("%s: recreated=%t, want %t", name, b.ID != c.ID, wantNew)
				}
				diffContainers(t, name, c, b, ids...)
			}
			if r := got[p.name+"-restarter-1"]; r.State == nil || r.State.StartedAt == ref[p.name+"-restarter-1"].State.StartedAt {
				t.Errorf("restarter (depends_on app with restart: true) was not restarted")
			}
			p.upChangesNothing()
			if out := p.compose("exec", "-T", "app", "cat", "/run/secrets/other-token", "/etc/app.conf", "/app_conf"); out != "s3cret\nanswer=42\nanswer=42\n" {
				t.Errorf("secret and configs in the redeployed container: %q", out)
			}
		})
	}
}

// TestProjectsAsUsersHaveThem loads projects the way people write them (several compose files
// named by COMPOSE_FILE in .env, an override file, COMPOSE_PROFILES, defaults, extends and
// include) and serves two projects from one deployer: a push redeploys the service in both,
// and compose, reading the same files, recreates nothing.
func TestProjectsAsUsersHaveThem(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("layout")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")

	layered := newParityProject(t, eng, cli, map[string]string{
		".env": "COMPOSE_FILE=base.yaml:prod.yaml\nCOMPOSE_PROFILES=extra\nWEB_TAG=" + tag + "\n",
		"base.yaml": `name: @PROJECT@
include: [lib/db.yaml]
services:
  web:
    extends: {file: common.yaml, service: httpd}
    image: acme/web:${WEB_TAG}
    environment: {LEVEL: "${LEVEL:-info}"}
  extra:
    image: acme/web:${WEB_TAG}
    init: true
    profiles: [extra]
  never:
    image: acme/web:${WEB_TAG}
    profiles: [debug]
`,
		"prod.yaml":   "services:\n  web:\n    deploy: {replicas: 2}\n    labels: {tier: prod}\n",
		"common.yaml": "services:\n  httpd:\n    init: true\n    ports: [\"127.0.0.1::80\"]\n    environment: {FROM: common}\n",
		"lib/db.yaml": "services:\n  db:\n    image: busybox:1\n    init: true\n    command: [sleep, \"3600\"]\n    volumes: [./data:/data]\n",
	})
	plain := newParityProject(t, eng, cli, map[string]string{
		"docker-compose.yml":          "name: @PROJECT@\nservices:\n  api:\n    image: acme/web:" + tag + "\n    init: true\n",
		"docker-compose.override.yml": "services:\n  api:\n    environment: [OVERRIDDEN=yes]\n",
	})
	layered.compose("up", "-d", "--quiet-pull")
	plain.compose("up", "-d", "--quiet-pull")
	before := map[string]container.InspectResponse{}
	maps.Copy(before, layered.containers())
	maps.Copy(before, plain.containers())

	ctx := context.Background()
	var mu sync.Mutex
	var recs []Record
	d := New(ctx, eng, Options{Projects: []compose.Spec{layered.spec(), plain.spec()}, Owners: []string{"acme"}, ForceRecreate: true, OnRecord: func(r Record) {
		mu.Lock()
		defer mu.Unlock()
		recs = append(recs, r)
	}})
	ticket, err := d.Deploy(ctx, Request{Source: "test", Repository: "acme/web", Tag: tag})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{layered.name + "/extra", layered.name + "/web", plain.name + "/api"}
	if !slices.Equal(ticket.Services, want) {
		t.Fatalf("push matched %v, want %v (profile debug inactive, both projects searched)", ticket.Services, want)
	}
	if err := d.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	requireDeployed(t, recs, "api", "extra", "web")
	after := map[string]container.InspectResponse{}
	maps.Copy(after, layered.containers())
	maps.Copy(after, plain.containers())
	for name, c := range before {
		diffContainers(t, name, c, after[name])
	}
	if len(after) != len(before) || len(after) != 5 {
		t.Errorf("containers after deploy: %v", slices.Sorted(maps.Keys(after)))
	}
	layered.upChangesNothing()
	plain.upChangesNothing()
}

// TestFailedCreateKeepsOldContainer makes the engine refuse the replacement container (its
// bind source vanished from the host, which the Mount API checks at create) and checks that
// the running container is left exactly as it was, with nothing half-made beside it.
func TestFailedCreateKeepsOldContainer(t *testing.T) {
	eng := deployertest.Engine(t)
	cli := deployertest.ComposeCLI(t, "v5.6.0")
	tag := deployertest.UniqueTag("keep")
	deployertest.PushHTTPImage(t, eng, "acme/web", tag, "version 1")
	p := newParityProject(t, eng, cli, map[string]string{
		"compose.yaml": `name: @PROJECT@
services:
  web:
    image: acme/web:` + tag + `
    init: true
    volumes:
      - {type: bind, source: ./conf, target: /conf, bind: {create_host_path: false}}
      - data:/data
volumes:
  data: {}
`,
		"conf/x": "x",
	})
	p.compose("up", "-d", "--quiet-pull")
	p.compose("exec", "-T", "web", "sh", "-c", "echo kept > /data/marker")
	before := p.containers()
	if err := os.RemoveAll(filepath.Join(p.dir, "conf")); err != nil {
		t.Fatal(err)
	}
	recs := p.deploy(p.spec(), "acme/web", tag)
	if len(recs) != 1 || recs[0].Outcome != OutcomeFailed || !strings.Contains(recs[0].Error, "conf") {
		t.Fatalf("deploy with a vanished bind source: %+v, want one failed deploy naming conf", recs)
	}
	after := p.containers()
	if len(after) != 1 {
		t.Fatalf("containers after the failed deploy: %v", slices.Sorted(maps.Keys(after)))
	}
	for name, c := range after {
		if b := before[name]; b.ID != c.ID || !c.State.Running {
			t.Errorf("%s was replaced or stopped by a deploy that failed", name)
		}
	}
	if out := p.compose("exec", "-T", "web", "cat", "/data/marker"); strings.TrimSpace(out) != "kept" {
		t.Errorf("named volume data after a failed deploy: %q", out)
	}
}
