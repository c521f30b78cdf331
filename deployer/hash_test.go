package deployer

import (
	"context"
	"testing"
)

// Hashes recorded from the labels real compose CLIs wrote for these files (v2.40.3 and v5.6.0
// agree on them); berth must reproduce them byte for byte.
func TestServiceHashMatchesCompose(t *testing.T) {
	tests := []struct {
		dir     string
		environ []string
		want    string
	}{
		{"testdata/hash/a", nil, "2e5dc4291e1da62e0091ae2e8bdaf875fff478eb5a2234fce4e273a0a373112d"},
		{"testdata/hash/c", []string{"FOO=fromos"}, "b83197e849e259aa8b291aad6b11858e6f5e02c72767ea77e5103ae748f91559"},
	}
	for _, tt := range tests {
		t.Run(tt.dir, func(t *testing.T) {
			p, err := loadProject(context.Background(), ProjectSpec{Dir: tt.dir, Environ: tt.environ})
			if err != nil {
				t.Fatal(err)
			}
			got, err := serviceHash(p.Services["web"])
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("hash = %s, want %s", got, tt.want)
			}
		})
	}
}
