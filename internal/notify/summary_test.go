package notify

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer"
)

// TestSummaryAvailable: watch mode's report of a new digest and of a newer tag read differently.
func TestSummaryAvailable(t *testing.T) {
	digest := summary(Event{Project: "shop", Service: "db", Repository: "acme/app", Tag: "1.4.2", Digest: "sha256:ab", Outcome: deployer.OutcomeAvailable})
	tag := summary(Event{Project: "shop", Service: "db", Repository: "acme/app", Tag: "1.4.2", Outcome: deployer.OutcomeAvailable,
		Error: "newer tag acme/app:1.5.0 available (running 1.4.2); berth does not edit compose files"})
	if !strings.Contains(digest, "has a new digest (watch, not deployed) of acme/app:1.4.2") {
		t.Errorf("digest report %q", digest)
	}
	if !strings.Contains(tag, "has a newer tag (watch, not deployed) than acme/app:1.4.2") || !strings.Contains(tag, "newer tag acme/app:1.5.0 available") {
		t.Errorf("tag report %q", tag)
	}
}
