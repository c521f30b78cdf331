package web

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/berth-dev/berth/deployer"
)

// streamLife bounds one event stream: the browser reconnects on its own (EventSource), and a
// bounded stream never outlives the server's write timeout or holds up its shutdown for long.
const streamLife = 25 * time.Second

// Hub fans deploy events out to the open event streams: each step of a running deploy as it
// happens, and each finished record. Sending never blocks: a stream that is not reading
// misses the event and catches up at its next connect, which names the newest record.
type Hub struct {
	mu   sync.Mutex
	subs map[chan event]struct{}
}

// event is one server-sent event: its name and its one-line data.
type event struct{ name, data string }

// NewHub returns a hub with no subscriber.
func NewHub() *Hub { return &Hub{subs: map[chan event]struct{}{}} }

// Publish tells every open stream that r finished; it is meant for the deployer's OnRecord.
func (h *Hub) Publish(r deployer.Record) {
	h.send(event{"record", r.ID + "/" + r.Project + "/" + r.Service})
}

// Step tells every open stream how a running deploy goes; it is meant for the deployer's OnStep.
func (h *Hub) Step(e deployer.StepEvent) {
	data, err := json.Marshal(e) // one line: JSON escapes every newline
	if err != nil {
		return
	}
	h.send(event{"step", string(data)})
}

func (h *Hub) send(e event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (h *Hub) subscribe() (<-chan event, func()) {
	ch := make(chan event, 32)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch, func() { h.mu.Lock(); delete(h.subs, ch); h.mu.Unlock() }
}

// handleEvents streams "record" events, each naming a finished deploy, and "step" events, each
// a deployer.StepEvent as JSON; the first event names the newest record already kept, so a
// page that missed one while reconnecting reloads.
func (u *UI) handleEvents() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := u.required(r); err != nil {
			u.deps.Fail(w, r, err)
			return
		}
		if u.deps.Stream != nil {
			release, err := u.deps.Stream(r)
			if err != nil && u.deps.Status(err) == http.StatusServiceUnavailable {
				// Too many pages are open: an error would end EventSource's retries for good,
				// so the stream ends at once and asks the browser to come back later.
				w.Header().Set("Content-Type", "text/event-stream")
				fmt.Fprint(w, "retry: 15000\n\n")
				return
			}
			if err != nil {
				u.deps.Fail(w, r, err)
				return
			}
			defer release()
		}
		events, stop := u.deps.Events.subscribe()
		defer stop()
		newest := ""
		if u.deps.History != nil {
			if rs := u.deps.History.Records(1); len(rs) > 0 {
				newest = rs[0].ID + "/" + rs[0].Project + "/" + rs[0].Service
			}
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		rc := http.NewResponseController(w)
		fmt.Fprintf(w, "retry: 2000\nevent: record\ndata: %s\n\n", newest)
		_ = rc.Flush()
		end := time.NewTimer(streamLife)
		defer end.Stop()
		for {
			select {
			case <-r.Context().Done():
				return
			case <-end.C:
				return
			case e := <-events:
				fmt.Fprintf(w, "event: %s\ndata: %s\n\n", e.name, e.data)
				if rc.Flush() != nil {
					return
				}
			}
		}
	})
}
