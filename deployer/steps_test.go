package deployer

import "testing"

// TestLayerID: only a layer's short id counts as a layer in the pull's messages, not a tag
// that happens to be 12 characters long.
func TestLayerID(t *testing.T) {
	for id, want := range map[string]bool{"0123456789ab": true, "page-158caed": false, "latest": false, "": false, "0123456789abc": false} {
		if got := layerID(id); got != want {
			t.Errorf("layerID(%q) = %v, want %v", id, got, want)
		}
	}
}
