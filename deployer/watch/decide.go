package watch

import "time"

// Reasons a new digest waits or is not deployed.
const (
	WaitNone     = ""
	WaitMinAge   = "min-age"  // seen for less than the minimum age
	WaitWindow   = "window"   // outside the maintenance window
	WaitApproval = "approval" // berth.approve=manual and not approved yet
)

// Actions a check calls for.
const (
	ActionNone   = "none"   // the service runs the tag's current digest
	ActionWait   = "wait"   // a new digest waits (Verdict.Why)
	ActionDeploy = "deploy" // deploy it now
	ActionNotify = "notify" // report it; notify-only services never deploy
)

// Verdict is what to do about a service's available digest.
type Verdict struct {
	Action string
	Why    string    // for ActionWait
	Until  time.Time // for ActionWait on min-age or window: when it could go; zero for approval
}

// Seen is what berth knows of a new digest: when it was first seen and whether it was approved.
type Seen struct {
	FirstSeen time.Time
	Approved  bool
}

// Decide says what a check finding available (the tag's current digest) while the service
// runs running calls for at now.
func Decide(p Policy, running, available string, seen Seen, now time.Time) Verdict {
	if available == "" || available == running {
		return Verdict{Action: ActionNone}
	}
	if p.Mode == ModeNotify {
		return Verdict{Action: ActionNotify}
	}
	if ready := seen.FirstSeen.Add(p.MinAge); p.MinAge > 0 && now.Before(ready) {
		return Verdict{Action: ActionWait, Why: WaitMinAge, Until: ready}
	}
	if p.Manual && !seen.Approved {
		return Verdict{Action: ActionWait, Why: WaitApproval}
	}
	if p.Window != nil && !p.Window.Contains(now) {
		return Verdict{Action: ActionWait, Why: WaitWindow, Until: p.Window.Next(now)}
	}
	return Verdict{Action: ActionDeploy}
}
