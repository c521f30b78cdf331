package compose

import "testing"

// Key tells apart specs whose fields hold the same strings in different places.
func TestSpecKey(t *testing.T) {
	specs := []Spec{
		{Dir: "/x"},
		{Dir: "/x", Files: []string{"a"}},
		{Dir: "/x", EnvFiles: []string{"a"}},
		{Dir: "/x", Files: []string{"a", "b"}},
		{Dir: "/x", Files: []string{"ab"}},
		{Dir: "/x", Profiles: []string{"a"}},
		{Dir: "/x", Environ: []string{"A=1"}},
		{Dir: "/x", HostDir: "/h"},
		{Dir: "/x", Name: "n"},
	}
	seen := map[string]int{}
	for i, s := range specs {
		k := s.Key()
		if j, ok := seen[k]; ok {
			t.Errorf("specs %d and %d share key %q", j, i, k)
		}
		seen[k] = i
		if again := (Spec{Dir: s.Dir, Name: s.Name, HostDir: s.HostDir, Files: s.Files, EnvFiles: s.EnvFiles, Profiles: s.Profiles, Environ: s.Environ}).Key(); again != k {
			t.Errorf("spec %d: key changed for an equal spec", i)
		}
	}
}
