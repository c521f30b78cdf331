package compose

import (
	"context"
	"testing"
)

// Recorded on 2026-11-23 from the com.docker.compose.config-hash labels that the real CLIs
// wrote: `docker-compose-v5.6.0 -p <unique> up -d` and `docker-compose-v2.40.3 -p <unique> up -d`
// in each testdata/hash directory, with FOO=fromos in the CLI's environment, on the sandbox
// engine; read back with `docker ps -a --format '{{.Label "com.docker.compose.config-hash"}}'`.
// None of them was computed with berth's code; berth must reproduce them byte for byte.
func TestServiceHashMatchesCompose(t *testing.T) {
	tests := []struct {
		dir, service string
		v2, v5       string // labels written by compose v2.40.3 and v5.6.0
	}{
		{"a", "web", "2e5dc4291e1da62e0091ae2e8bdaf875fff478eb5a2234fce4e273a0a373112d", "2e5dc4291e1da62e0091ae2e8bdaf875fff478eb5a2234fce4e273a0a373112d"},
		{"c", "web", "b83197e849e259aa8b291aad6b11858e6f5e02c72767ea77e5103ae748f91559", "b83197e849e259aa8b291aad6b11858e6f5e02c72767ea77e5103ae748f91559"},
		{"mixed", "shortbind", "2611f0e61031b82a3320265a53e5d3cbeef61b35ece4c74eee23e964d6eaa296", "210ac77040919284eb9daf791f60ddb6a9e267121774d19ea1241228b52da1d0"},
		{"mixed", "longbind", "80eecb80d6d68021aa242f0a609fc0e474543dc7f180113d977df99fcc2d90bb", "80eecb80d6d68021aa242f0a609fc0e474543dc7f180113d977df99fcc2d90bb"},
		{"mixed", "longbindcreate", "d365c8af1bb82e02a799fe946acc0f46e9043439f3e82ca7db517fe3d9132d32", "9af83e28c8c1c076ae4463c30cc2fb445669f9e9974ad2f63f729b46f3c7ab15"},
		{"mixed", "longbindnocreate", "210ac77040919284eb9daf791f60ddb6a9e267121774d19ea1241228b52da1d0", "301345861a24d63be52f3956b2922dd86df4ee09cfaa5220ea947f2079c3c839"},
		{"mixed", "longbindpropagation", "37073728d3e175755d90857bb2f06c8e0b40aa9947f8d7346786cacba0644df1", "37073728d3e175755d90857bb2f06c8e0b40aa9947f8d7346786cacba0644df1"},
		{"mixed", "namedvolume", "f112b4575f08dd7f118e31442aceedc08ae22d2cfc9fdeaea9333bdb7057cacc", "3c62fca01d3d84829ed002461de0a4952ef114e327a3bea4d9597734ceb1aca7"},
		{"mixed", "ports", "03f1baa99d4622e1e13abd1aa85a13022d50ae541928fecb3b7adb536c23fd82", "03f1baa99d4622e1e13abd1aa85a13022d50ae541928fecb3b7adb536c23fd82"},
		{"mixed", "healthcheck", "78f742416b50c6a7837c7be0c062bbf95217be94a5e4509e861ddbd5368e34d4", "78f742416b50c6a7837c7be0c062bbf95217be94a5e4509e861ddbd5368e34d4"},
		{"mixed", "resources", "fce6d20c4f3511d469d72b37bdb6f798b64b6d74702aeaad2f0a30ece5d74c56", "fce6d20c4f3511d469d72b37bdb6f798b64b6d74702aeaad2f0a30ece5d74c56"},
		{"mixed", "networks", "bf4c86780b4f45761fe6f01e1c81763e67b9f85f24654eb5fc6ddecf82ff5fde", "bf4c86780b4f45761fe6f01e1c81763e67b9f85f24654eb5fc6ddecf82ff5fde"},
	}
	for _, tt := range tests {
		p, err := Load(context.Background(), Spec{Dir: "testdata/hash/" + tt.dir, Environ: []string{"FOO=fromos"}})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct{ version, want string }{{"2.40.3", tt.v2}, {"5.6.0", tt.v5}} {
			t.Run(tt.dir+"/"+tt.service+"/"+c.version, func(t *testing.T) {
				s, ok := p.Services[tt.service]
				if !ok {
					t.Fatalf("no service %s", tt.service)
				}
				got, err := ServiceHash(s, c.version)
				if err != nil {
					t.Fatal(err)
				}
				if got != c.want {
					raw, _ := serviceHashJSON(s, HashRule(c.version))
					t.Errorf("hash = %s, want %s\nJSON: %s", got, c.want, raw)
				}
			})
		}
	}
}

func TestHashRule(t *testing.T) {
	tests := []struct{ version, want string }{
		{"2.40.3", RuleV2},
		{"v2.40.0", RuleV2},
		{"2.20.2", RuleV2},
		{"1.29.2", RuleV2},
		{"5.6.0", RuleV5},
		{"v5.7.0", RuleV5},
		{"6.0.0", RuleV5},
		{"", HashRule(DefaultVersion)},
		{"garbage", HashRule(DefaultVersion)},
	}
	for _, tt := range tests {
		if got := HashRule(tt.version); got != tt.want {
			t.Errorf("HashRule(%q) = %q, want %q", tt.version, got, tt.want)
		}
	}
	if HashRule(DefaultVersion) != RuleV5 {
		t.Errorf("the default release %s should hash with the newest rule", DefaultVersion)
	}
}

func TestCheckVersion(t *testing.T) {
	for _, v := range []string{"", "2.40.3", "v5.6.0", "5.7", "5.8.0-rc.1"} {
		if err := CheckVersion(v); err != nil {
			t.Errorf("CheckVersion(%q) = %v, want nil", v, err)
		}
	}
	for _, v := range []string{"latest", "5", "v", "5.x.0", "0.1.0", "2.40.3.1"} {
		if err := CheckVersion(v); err == nil {
			t.Errorf("CheckVersion(%q) accepted it", v)
		}
	}
}
