package deployer

import "testing"

func TestSelfToLocal(t *testing.T) {
	self := Self{Mounts: []Mount{{Source: "/srv", Destination: "/host-srv"}, {Source: "/srv/app", Destination: "/app"}}}
	for host, want := range map[string]string{
		"/srv/app/compose.yaml":  "/app/compose.yaml", // the longest mount wins
		"/srv/app":               "/app",
		"/srv/blog/compose.yaml": "/host-srv/blog/compose.yaml",
		"/srvx/compose.yaml":     "/srvx/compose.yaml", // a prefix of the name is not a parent
		"/opt/shop/compose.yaml": "/opt/shop/compose.yaml",
		"":                       "",
	} {
		if got := self.toLocal(host); got != want {
			t.Errorf("toLocal(%q) = %q, want %q", host, got, want)
		}
	}
	if got := (Self{}).toLocal("/srv/app"); got != "/srv/app" {
		t.Errorf("outside a container toLocal changed the path to %q", got)
	}
}

func TestProjectFilter(t *testing.T) {
	cases := []struct {
		f    ProjectFilter
		name string
		want bool
	}{
		{ProjectFilter{}, "shop", true},
		{ProjectFilter{Allow: []string{"shop"}}, "shop", true},
		{ProjectFilter{Allow: []string{"shop"}}, "blog", false},
		{ProjectFilter{Deny: []string{"db"}}, "db", false},
		{ProjectFilter{Deny: []string{"db"}}, "shop", true},
		{ProjectFilter{Allow: []string{"db"}, Deny: []string{"db"}}, "db", false}, // deny wins
	}
	for _, c := range cases {
		if got := c.f.allows(c.name); got != c.want {
			t.Errorf("%+v allows %s = %v, want %v", c.f, c.name, got, c.want)
		}
	}
}
