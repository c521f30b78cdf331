package deployer

import (
	"testing"

	"github.com/berth-dev/berth/deployer/fault"
	"github.com/moby/moby/api/types/swarm"
)

func TestSwarmSkipReason(t *testing.T) {
	svc := func(name, stack, image string) swarm.Service {
		s := swarm.Service{ID: name + "-id"}
		s.Spec.Name = name
		if stack != "" {
			s.Spec.Labels = map[string]string{labelStack: stack}
		}
		s.Spec.TaskTemplate.ContainerSpec = &swarm.ContainerSpec{Image: image}
		return s
	}
	self := Self{SwarmService: "ops_berth-id", Stack: "ops", Image: imageRef{Name: "docker.io/acme/berth", Tag: "1"}}
	for _, tc := range []struct {
		name    string
		backend string
		svc     swarm.Service
		filter  ProjectFilter
		tracked bool
	}{
		{"stack service pinned by the CLI", BackendAuto, svc("shop_web", "shop", "acme/web:1@sha256:"+sixtyFour), ProjectFilter{}, true},
		{"stack service by tag", BackendAuto, svc("shop_web", "shop", "acme/web:1"), ProjectFilter{}, true},
		{"digest alone follows nothing", BackendAuto, svc("shop_web", "shop", "acme/web@sha256:"+sixtyFour), ProjectFilter{}, false},
		{"outside a stack in auto mode", BackendAuto, svc("web", "", "acme/web:1"), ProjectFilter{}, false},
		{"outside a stack with BACKEND=swarm", BackendSwarm, svc("web", "", "acme/web:1"), ProjectFilter{}, true},
		{"stack skipped by SKIP_PROJECTS", BackendAuto, svc("shop_web", "shop", "acme/web:1"), ProjectFilter{Deny: []string{"shop"}}, false},
		{"berth's own service", BackendAuto, svc("ops_berth", "ops", "acme/berth:1"), ProjectFilter{}, false},
		{"berth's socket proxy (same stack, same image)", BackendAuto, svc("ops_proxy", "ops", "acme/berth:1@sha256:"+sixtyFour), ProjectFilter{}, false},
		{"berth's image in another stack", BackendAuto, svc("other_berth", "other", "acme/berth:1"), ProjectFilter{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &Deployer{backend: tc.backend, filter: tc.filter, self: self}
			ref, ok := serviceImage(tc.svc)
			reason := d.swarmSkipReason(tc.svc, ref, ok)
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
		ref, err := parseImageRef(in)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := pinnedFamiliar(ref, "sha256:"+sixtyFour); err != nil || got != want {
			t.Errorf("pinnedFamiliar(%s) = %q, %v; want %q", in, got, err, want)
		}
	}
	ref, _ := parseImageRef("acme/web:1")
	if _, err := pinnedFamiliar(ref, "sha256:short"); fault.KindOf(err) != fault.Invalid {
		t.Errorf("a bad digest: %v, want an invalid error", err)
	}
}

const sixtyFour = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
