package deployer

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/compose-spec/compose-go/v2/types"
)

// A burst of calls arriving while a load runs shares one further load, and no call gets a
// project from a load that started before it arrived.
func TestProjectLoadsShareOnlyLaterLoads(t *testing.T) {
	var started atomic.Int64 // how many loads have started
	release := make(chan struct{})
	loads := newProjectLoads(func(context.Context, compose.Spec) (*types.Project, error) {
		n := started.Add(1)
		if n == 1 {
			<-release // hold the first load so the burst arrives during it
		}
		return &types.Project{Name: string(rune('0' + n))}, nil
	})
	spec := compose.Spec{Dir: "/x"}
	first := make(chan *types.Project)
	go func() {
		p, _ := loads.get(context.Background(), spec)
		first <- p
	}()
	for started.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const burst = 50
	var wg sync.WaitGroup
	got := make([]string, burst)
	for i := range burst {
		wg.Go(func() {
			p, err := loads.get(context.Background(), spec)
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = p.Name
		})
	}
	time.Sleep(50 * time.Millisecond) // let the burst queue behind the held load
	close(release)
	if p := <-first; p.Name != "1" {
		t.Errorf("first call got load %s, want 1", p.Name)
	}
	wg.Wait()
	for i, name := range got {
		if name == "1" {
			t.Errorf("call %d got the load that started before it arrived", i)
		}
	}
	if n := started.Load(); n != 2 {
		t.Errorf("%d loads for 1 + %d calls, want 2", n, burst)
	}
}

// Calls that do not overlap each load the files afresh, so an edit is seen at once.
func TestProjectLoadsSeeEdits(t *testing.T) {
	dir := t.TempDir()
	write := func(image string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "compose.yaml"), []byte("name: edits\nservices:\n  web:\n    image: "+image+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	loads := newProjectLoads(compose.Load)
	spec := compose.Spec{Dir: dir}
	for _, image := range []string{"acme/web:1", "acme/web:2"} {
		write(image)
		p, err := loads.get(context.Background(), spec)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Services["web"].Image; got != image {
			t.Errorf("image %s after the edit, want %s", got, image)
		}
	}
}
