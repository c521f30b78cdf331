package state

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestAcceptedPushesSurviveAReopen: what Pending owes after a reopen (as after a crash) is, per
// service, the newest accepted push neither done nor superseded, whatever order lines came in.
func TestAcceptedPushesSurviveAReopen(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	push := func(id, svc string, at time.Time) AcceptedPush {
		return AcceptedPush{ID: id, Service: svc, PushedAt: at, Push: []byte(`{"Tag":"` + id + `"}`)}
	}
	for _, tc := range []struct {
		name string
		ops  func(a *Accepted)
		want map[string]string // service → owed push id
	}{
		{"accepted, never deployed", func(a *Accepted) { add(t, a, push("a", "p/web", t0)) }, map[string]string{"p/web": "a"}},
		{"deployed", func(a *Accepted) { add(t, a, push("a", "p/web", t0)); done(t, a, "a", "p/web") }, map[string]string{}},
		{"newer push while deploying", func(a *Accepted) {
			add(t, a, push("a", "p/web", t0))
			add(t, a, push("b", "p/web", t0.Add(time.Second)))
			done(t, a, "a", "p/web")
		}, map[string]string{"p/web": "b"}},
		{"older push arrives late (the queue keeps the newer)", func(a *Accepted) {
			add(t, a, push("b", "p/web", t0.Add(time.Second)))
			add(t, a, push("a", "p/web", t0))
		}, map[string]string{"p/web": "b"}},
		{"one request, two services, one done", func(a *Accepted) {
			add(t, a, push("a", "p/web", t0), push("a", "p/api", t0))
			done(t, a, "a", "p/api")
		}, map[string]string{"p/web": "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(t.TempDir())
			a, err := d.Accepted()
			if err != nil {
				t.Fatal(err)
			}
			tc.ops(a)
			a.Close()
			// A crash mid-append leaves a torn last line: it is ignored.
			f, err := os.OpenFile(filepath.Join(d.root, "accepted.jsonl"), os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString(`{"accepted":[{"id":"torn`)
			f.Close()
			again, err := d.Accepted()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, p := range again.Pending() {
				got[p.Service] = p.ID
			}
			if len(got) != len(tc.want) {
				t.Fatalf("owed %v, want %v", got, tc.want)
			}
			for s, id := range tc.want {
				if got[s] != id {
					t.Errorf("owed %v, want %v", got, tc.want)
				}
			}
		})
	}
}

// TestAcceptedInMemory: without STATE_DIR the same account is kept, and nothing is written.
func TestAcceptedInMemory(t *testing.T) {
	a, err := New("").Accepted()
	if err != nil {
		t.Fatal(err)
	}
	add(t, a, AcceptedPush{ID: "a", Service: "p/web"})
	if len(a.Pending()) != 1 {
		t.Fatalf("pending %v", a.Pending())
	}
	done(t, a, "a", "p/web")
	if len(a.Pending()) != 0 {
		t.Fatalf("pending %v", a.Pending())
	}
}

// TestAcceptedCompacts: the log is rewritten with only what is owed once it grows.
func TestAcceptedCompacts(t *testing.T) {
	d := New(t.TempDir())
	a, err := d.Accepted()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	for range compactAfter + 10 {
		add(t, a, AcceptedPush{ID: "x", Service: "p/web"})
		done(t, a, "x", "p/web")
	}
	add(t, a, AcceptedPush{ID: "y", Service: "p/web"})
	b, err := os.ReadFile(filepath.Join(d.root, "accepted.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(b); n > 100*compactAfter/2 {
		t.Errorf("accepted.jsonl is %d bytes after compaction", n)
	}
	again, _ := d.Accepted()
	if p := again.Pending(); len(p) != 1 || p[0].ID != "y" {
		t.Errorf("after compaction owed %v, want y", p)
	}
}

// BenchmarkAcceptedAdd is the cost a 202 pays for its promise: one appended, fsynced line.
func BenchmarkAcceptedAdd(b *testing.B) {
	a, err := New(b.TempDir()).Accepted()
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	p := []AcceptedPush{{ID: "0123456789abcdef", Service: "shop/web", PushedAt: time.Now(),
		Push: []byte(`{"Source":"dockerhub","Repository":"acme/web","Tag":"latest","Digest":"","Pusher":"ci","PushedAt":"2026-01-01T00:00:00Z"}`)}}
	for b.Loop() {
		if err := a.Add(p); err != nil {
			b.Fatal(err)
		}
	}
}

func add(t *testing.T, a *Accepted, p ...AcceptedPush) {
	t.Helper()
	if err := a.Add(p); err != nil {
		t.Fatal(err)
	}
}

func done(t *testing.T, a *Accepted, id, svc string) {
	t.Helper()
	if err := a.Done(id, svc); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkAcceptedAddParallel: 202s that arrive together share their fsyncs.
func BenchmarkAcceptedAddParallel(b *testing.B) {
	a, err := New(b.TempDir()).Accepted()
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	p := []AcceptedPush{{ID: "0123456789abcdef", Service: "shop/web", Push: []byte(`{"Repository":"acme/web","Tag":"latest"}`)}}
	b.SetParallelism(32)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := a.Add(p); err != nil {
				b.Error(err)
			}
		}
	})
}
