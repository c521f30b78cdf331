package deployer

import "github.com/berth-dev/berth/deployer/state"

// History keeps the newest Records of finished deploys, in memory and, with a STATE_DIR, in
// its deploy history file (see state.History).
type History = state.History[Record]

// OpenHistory loads the history kept in dir (created if missing); dir "" keeps it in memory.
// A limit <= 0 means state.DefaultHistoryLimit.
func OpenHistory(dir string, limit int) (*History, error) {
	return state.OpenHistory[Record](state.New(dir), limit)
}
