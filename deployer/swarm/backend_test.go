package swarm

import (
	"testing"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	swarmapi "github.com/moby/moby/api/types/swarm"
)

func TestSkipReason(t *testing.T) {
	svc := func(name, stack, image string) swarmapi.Service {
		s := swarmapi.Service{ID: name + "-id"}
		s.Spec.Name = name
		if stack != "" {
			s.Spec.Labels = map[string]string{LabelStack: stack}
		}
		s.Spec.TaskTemplate.ContainerSpec = &swarmapi.ContainerSpec{Image: image}
		return s
	}
	self := Self{Service: "ops_berth-id", Stack: "ops", Image: "docker.io/acme/berth"}
	allowAll := func(string) bool { return true }
	skipShop := func(p string) bool { return p != "shop" } // SKIP_PROJECTS=shop
	for _, tc := range []struct {
		name    string
		all     bool
		svc     swarmapi.Service
		allowed func(string) bool
		tracked bool
	}{
		{"stack service pinned by the CLI", false, svc("shop_web", "shop", "acme/web:1@sha256:"+sixtyFour), allowAll, true},
		{"stack service by tag", false, svc("shop_web", "shop", "acme/web:1"), allowAll, true},
		{"digest alone follows nothing", false, svc("shop_web", "shop", "acme/web@sha256:"+sixtyFour), allowAll, false},
		{"outside a stack in auto mode", false, svc("web", "", "acme/web:1"), allowAll, false},
		{"outside a stack with BACKEND=swarm", true, svc("web", "", "acme/web:1"), allowAll, true},
		{"stack skipped by SKIP_PROJECTS", false, svc("shop_web", "shop", "acme/web:1"), skipShop, false},
		{"berth's own service", false, svc("ops_berth", "ops", "acme/berth:1"), allowAll, false},
		{"berth's socket proxy (same stack, same image)", false, svc("ops_proxy", "ops", "acme/berth:1@sha256:"+sixtyFour), allowAll, false},
		{"berth's image in another stack", false, svc("other_berth", "other", "acme/berth:1"), allowAll, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := New(nil, Options{All: tc.all, Allowed: tc.allowed, Self: self})
			ref, ok := serviceImage(tc.svc)
			reason := b.skipReason(tc.svc, ref, ok)
			if (reason == "") != tc.tracked {
				t.Errorf("reason %q, want tracked=%v", reason, tc.tracked)
			}
		})
	}
}

func TestPinnedFamiliar(t *testing.T) {
	for in, want := range map[string]string{
		"acme/web:1":                     "acme/web:1@sha256:" + sixtyFour,
		"127.0.0.1:5011/acme/private:v2": "127.0.0.1:5011/acme/private:v2@sha256:" + sixtyFour,
	} {
		ref, err := registry.ParseRef(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := pinnedFamiliar(ref, "sha256:"+sixtyFour); err != nil || got != want {
			t.Errorf("pinnedFamiliar(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	ref, _ := registry.ParseRef("acme/web:1")
	if _, err := pinnedFamiliar(ref, "sha256:short"); fault.KindOf(err) != fault.Invalid {
		t.Errorf("a bad digest: %v, want an invalid error", err)
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
