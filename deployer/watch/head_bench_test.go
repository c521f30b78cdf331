package watch

import (
	"context"
	"os"
	"testing"
)

// BenchmarkHead is the client-side cost of one check against the sandbox's real registry
// (REGISTRY, e.g. 127.0.0.1:5000, which holds library/busybox:1): the figure BENCHMARKS.md
// multiplies out for 100 watched services. Skipped without REGISTRY.
func BenchmarkHead(b *testing.B) {
	reg := os.Getenv("REGISTRY")
	if reg == "" {
		b.Skip("REGISTRY is not set (the sandbox registry, e.g. 127.0.0.1:5000)")
	}
	ref := reg + "/library/busybox:1"
	if _, err := Head(context.Background(), ref, nil, nil); err != nil {
		b.Skipf("%s: %v", ref, err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Head(context.Background(), ref, nil, nil); err != nil {
			b.Fatal(err)
		}
	}
}
