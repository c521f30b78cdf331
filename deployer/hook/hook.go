// Package hook runs a service's lifecycle hooks (pre-stop, post-start) inside its containers
// through the engine's exec API. It imports nothing of the deployer; the engine calls it makes
// are Engine.
package hook

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/berth-dev/berth/deployer/cmdline"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"
)

// Service labels declaring lifecycle hooks. Each is a shell string (run with sh -c) or a JSON
// exec array, run through the Engine's exec API inside the service's container.
const (
	// LabelPreStop runs in the old container just before it is stopped; a failure stops
	// the deploy with the old container still serving.
	LabelPreStop = "berth.hook.pre-stop"
	// LabelPostStart runs in the new container once started, before the deploy counts it
	// healthy; a failure fails the deploy.
	LabelPostStart = "berth.hook.post-start"
	// LabelTimeout bounds each hook (Go duration); DefaultTimeout when unset.
	LabelTimeout = "berth.hook.timeout"
)

// DefaultTimeout bounds a hook that sets no timeout.
const DefaultTimeout = time.Minute

// Engine is what a hook asks of the Docker Engine; *client.Client satisfies it.
type Engine interface {
	ExecCreate(ctx context.Context, id string, opts client.ExecCreateOptions) (client.ExecCreateResult, error)
	ExecAttach(ctx context.Context, execID string, opts client.ExecAttachOptions) (client.ExecAttachResult, error)
	ExecInspect(ctx context.Context, execID string, opts client.ExecInspectOptions) (client.ExecInspectResult, error)
}

// Set is a service's lifecycle hooks, as its labels declare them.
type Set struct {
	PreStop   string        `json:"pre_stop,omitempty"`
	PostStart string        `json:"post_start,omitempty"`
	Timeout   time.Duration `json:"timeout_ns,omitempty"`
}

// Any says whether the service declares a hook; only then does berth use the exec API.
func (h Set) Any() bool { return h.PreStop != "" || h.PostStart != "" }

// For reads a service's hook labels and rejects malformed ones before anything runs.
func For(labels types.Labels) (Set, error) {
	h := Set{PreStop: labels[LabelPreStop], PostStart: labels[LabelPostStart], Timeout: DefaultTimeout}
	for _, l := range []string{LabelPreStop, LabelPostStart} {
		if _, err := cmdline.Parse(labels[l]); err != nil {
			return Set{}, fault.Errorf(fault.Invalid, "label %s: %v", l, err)
		}
	}
	if v := labels[LabelTimeout]; v != "" {
		t, err := time.ParseDuration(v)
		if err != nil || t <= 0 {
			return Set{}, fault.Errorf(fault.Invalid, "label %s=%q is not a positive duration such as 30s", LabelTimeout, v)
		}
		h.Timeout = t
	}
	if !h.Any() {
		return Set{}, nil
	}
	return h, nil
}

// Run executes cmd, the hook called which, in the container and fails unless it exits 0
// within timeout; the error carries the hook's last output lines.
func Run(ctx context.Context, eng Engine, which, containerID, cmd string, timeout time.Duration) error {
	argv, err := cmdline.Parse(cmd)
	if err != nil || argv == nil {
		return fault.Errorf(fault.Invalid, "hook %s: %v", which, err)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	created, err := eng.ExecCreate(ctx, containerID, client.ExecCreateOptions{Cmd: argv, AttachStdout: true, AttachStderr: true})
	if err != nil {
		return fmt.Errorf("hook %s: create exec (needs the exec endpoints; behind berth's socket proxy set SOCKET_PROXY_EXEC=true): %w", which, err)
	}
	att, err := eng.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return fmt.Errorf("hook %s: start exec: %w", which, err)
	}
	var out bytes.Buffer
	copied := make(chan error, 1)
	go func() {
		_, err := stdcopy.StdCopy(&out, &out, io.LimitReader(att.Reader, 1<<20))
		copied <- err
	}()
	select {
	case <-copied:
	case <-ctx.Done():
		att.Close()
		<-copied
		// The engine cannot kill an exec; the process goes on, but the deploy does not wait for it.
		return fault.Errorf(fault.Conflict, "hook %s did not finish within %s%s", which, timeout, outputTail(out.Bytes()))
	}
	att.Close()
	// The engine may record the exit a moment after the output closes: look a few times.
	var ins client.ExecInspectResult
	for range 50 {
		if ins, err = eng.ExecInspect(context.WithoutCancel(ctx), created.ID, client.ExecInspectOptions{}); err != nil {
			return fmt.Errorf("hook %s: inspect exec: %w", which, err)
		}
		if !ins.Running {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ins.Running {
		return fault.Errorf(fault.Conflict, "hook %s closed its output but is still running", which)
	}
	if ins.ExitCode != 0 {
		return fault.Errorf(fault.Conflict, "hook %s exited with code %d%s", which, ins.ExitCode, outputTail(out.Bytes()))
	}
	return nil
}

// outputTail renders a hook's last output lines for an error message.
func outputTail(b []byte) string {
	lines := cmdline.LastLines(b, 5)
	if len(lines) == 0 {
		return ""
	}
	s := "; last output:"
	for _, l := range lines {
		s += " | " + l
	}
	return s
}
