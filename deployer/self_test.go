package deployer

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/deployertest"
	"github.com/berth-dev/berth/deployer/fault"
)

// TestNeverRedeploysItself runs berth's own compose project (berth and its socket proxy on the
// berth image) beside another project on the same image: a push of that image redeploys the
// other project only, and a push that matches only berth's services is refused with a conflict.
func TestNeverRedeploysItself(t *testing.T) {
	eng := deployertest.Engine(t)
	composeCLI := deployertest.ComposeCLI(t, "v5.6.0")
	ctx := context.Background()
	tag := deployertest.UniqueTag("self")
	deployertest.PushHTTPImage(t, eng, "acme/berth", tag, "berth 1")
	suffix := strings.ReplaceAll(tag, "-", "")
	up := func(name, yaml string) compose.Spec {
		dir := deployertest.WriteProject(t, name, yaml)
		deployertest.ComposeUp(t, composeCLI, dir)
		return compose.Spec{Dir: dir}
	}
	selfSpec := up("own"+suffix, fmt.Sprintf(`services:
  berth:
    image: acme/berth:%[1]s
    init: true
  socket-proxy:
    image: acme/berth:%[1]s
    init: true
`, tag))
	otherSpec := up("staging"+suffix, fmt.Sprintf(`services:
  agent:
    image: acme/berth:%s
    init: true
`, tag))
	own := "own" + suffix
	ids := map[string]string{}
	for _, name := range []string{own + "-berth-1", own + "-socket-proxy-1", "staging" + suffix + "-agent-1"} {
		res, err := eng.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids[name] = res.Container.ID
	}
	ownContainer, err := eng.ContainerInspect(ctx, ids[own+"-berth-1"], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	self := selfFromInspect(ownContainer)
	if self.Project != own || self.Service != "berth" {
		t.Fatalf("self = %+v, want %s/berth", self, own)
	}

	req := Request{Source: "test", Repository: "acme/berth", Tag: tag}
	alone := New(ctx, eng, Options{Projects: []compose.Spec{selfSpec}, Owners: []string{"acme"}, Self: self})
	_, err = alone.Deploy(ctx, req)
	if fault.KindOf(err) != fault.Conflict || !strings.Contains(err.Error(), own+"/berth, "+own+"/socket-proxy runs berth itself") {
		t.Fatalf("a push matching only berth's own services gave %v, want a conflict naming them", err)
	}

	d := New(ctx, eng, Options{Projects: []compose.Spec{selfSpec, otherSpec}, Owners: []string{"acme"}, ForceRecreate: true, Self: self})
	ticket, err := d.Deploy(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(ticket.Services, ","); got != "staging"+suffix+"/agent" {
		t.Fatalf("queued %q, want only staging%s/agent", got, suffix)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := d.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	for name, id := range ids {
		res, err := eng.ContainerInspect(ctx, name, client.ContainerInspectOptions{})
		recreated := err == nil && res.Container.ID != id
		if strings.HasPrefix(name, own) && (err != nil || recreated) {
			t.Errorf("berth's own container %s was touched (err %v)", name, err)
		}
		if !strings.HasPrefix(name, own) && !recreated {
			t.Errorf("%s was not redeployed (err %v)", name, err)
		}
	}
}
