package handler

import "net/http"

// An event stream (the status page's live updates) lasts up to half a minute and reconnects
// at once. Were it to keep its request slot, a few open pages would take slots the webhooks
// need, and a push would wait or be refused while someone watched. So a stream, once
// authenticated, gives its slot back and holds one of a few stream places instead: streams
// can only crowd out other streams.

// maxStreams is how many event streams may be open at once, for MaxConcurrent slots.
func maxStreams(slots int) int { return max(4, slots/4) }

// holdStream trades r's request slot for a stream place; release frees the place. A request
// outside protect holds nothing and is let through.
func holdStream(r *http.Request) (release func(), err error) {
	a, _ := r.Context().Value(admissionKey{}).(*admission)
	if a == nil {
		return func() {}, nil
	}
	select {
	case a.streams <- struct{}{}:
	default:
		return nil, busyError{}
	}
	a.mu.Lock()
	if a.slotH {
		a.slots.release()
		a.slotH = false
	}
	a.mu.Unlock()
	return func() { <-a.streams }, nil
}
