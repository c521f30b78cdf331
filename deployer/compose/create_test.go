package compose

import (
	"context"
	"testing"
)

// TestBindsAsTheReleaseSendsThem: compose v2.40.3 (compose-go v2.9) sends a bind whose `bind:`
// block leaves out create_host_path through the Mount API with CreateMountpoint off, and v5
// (compose-go v2.10+) with it on; a short bind is a Binds string for both. Engine API 1.44+
// keeps the field, so a difference would show in the container on Engine 29 only.
func TestBindsAsTheReleaseSendsThem(t *testing.T) {
	p, err := Load(context.Background(), Spec{Dir: "testdata/hash/mixed"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		service, version string
		binds            int
		createMountpoint bool // of the one mount, when binds is 0
	}{
		{"shortbind", "2.40.3", 1, false},
		{"shortbind", "5.7.1", 1, false},
		{"longbindpropagation", "2.40.3", 0, false},
		{"longbindpropagation", "5.6.0", 0, true},
		{"longbindcreate", "2.40.3", 1, false},
		{"longbindnocreate", "5.6.0", 0, false},
	} {
		t.Run(tt.service+"/"+tt.version, func(t *testing.T) {
			spec, err := NewCreateSpec(p, p.Services[tt.service], 1, map[string]string{LabelVersion: tt.version}, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			h := spec.Host
			if len(h.Binds) != tt.binds || len(h.Binds)+len(h.Mounts) != 1 {
				t.Fatalf("binds %v, mounts %+v; want %d bind(s) of 1 volume", h.Binds, h.Mounts, tt.binds)
			}
			if tt.binds == 0 && (h.Mounts[0].BindOptions == nil || h.Mounts[0].BindOptions.CreateMountpoint != tt.createMountpoint) {
				t.Errorf("mount %+v, want CreateMountpoint %t", h.Mounts[0].BindOptions, tt.createMountpoint)
			}
		})
	}
}
