package gate

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/berth-dev/berth/deployer/cmdline"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Engine is what a container gate asks of the Docker Engine; *client.Client satisfies it.
type Engine interface {
	ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, opts client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerWait(ctx context.Context, id string, opts client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerLogs(ctx context.Context, id string, opts client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
}

// Runner asks a deploy's gate; its zero value is not usable, Engine must be set.
type Runner struct {
	Engine Engine       // runs container gates
	HTTP   *http.Client // asks policy endpoints; http.DefaultClient when nil
	// Image makes a container gate's image present, pulling it when the engine lacks it (the
	// deployer knows the registry credentials); its error is the veto's reason, as it is.
	// Nil leaves a missing image to the engine's create call.
	Image func(ctx context.Context, ref string) error
	Log   *slog.Logger // reports a gate container that could not be removed; nil discards
}

// Run asks the gate about the deploy. A veto (or a gate that cannot run, or times out)
// is a *Veto; the result is returned either way for the Record.
func (r Runner) Run(ctx context.Context, g Config, req Request) (Result, error) {
	start := time.Now()
	var res Result
	if g.URL != "" {
		res = r.askEndpoint(ctx, g, req)
	} else {
		res = r.runContainer(ctx, g, req)
	}
	res.Took = time.Since(start)
	if errors.Is(ctx.Err(), context.Canceled) {
		return res, ctx.Err()
	}
	if !res.Passed {
		return res, &Veto{Result: res}
	}
	return res, nil
}

// askEndpoint POSTs the deploy to the policy endpoint; only a 2xx answer lets it through, and
// an endpoint that cannot be reached vetoes (a policy nobody can ask is not a yes).
func (r Runner) askEndpoint(ctx context.Context, g Config, req Request) Result {
	res := Result{Kind: "http", Target: ShownURL(g.URL)}
	ctx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	body, _ := json.Marshal(req)
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		res.Reason = "policy endpoint URL " + ShownURL(g.URL) + " is not usable"
		return res
	}
	hr.Header.Set("Content-Type", "application/json")
	resp, err := cmp.Or(r.HTTP, http.DefaultClient).Do(hr)
	if err != nil {
		res.TimedOut = errors.Is(err, context.DeadlineExceeded)
		// The client's error repeats the URL, which may hold a secret: keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		res.Reason = "policy endpoint: " + err.Error()
		if res.TimedOut {
			res.Reason = fmt.Sprintf("policy endpoint did not answer within %s", g.Timeout)
		}
		return res
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	res.Status, res.Output = resp.StatusCode, cmdline.LastLines(b, outputLines)
	res.Passed = resp.StatusCode >= 200 && resp.StatusCode < 300
	if !res.Passed {
		res.Reason = "policy endpoint answered " + resp.Status
	}
	return res
}

// runContainer runs the gate image once with the deploy in its environment. The container
// is always removed, also when it hangs past its timeout (removing it kills it).
func (r Runner) runContainer(ctx context.Context, g Config, req Request) Result {
	res := Result{Kind: "container", Target: g.Image}
	fail := func(format string, args ...any) Result {
		res.Reason = fmt.Sprintf(format, args...)
		return res
	}
	if r.Image != nil {
		if err := r.Image(ctx, g.Image); err != nil {
			return fail("%v", err)
		}
	}
	cfg := &container.Config{Image: g.Image, Env: req.env(),
		Labels: map[string]string{"berth.gate-for": req.Project + "/" + req.Service}} // finds a leftover, should one survive a crash
	argv, _ := cmdline.Parse(g.Command)
	if argv == nil {
		cfg.Cmd = []string{req.Image} // the image's own entrypoint, given the reference to check
	} else {
		cfg.Entrypoint = argv
	}
	network := g.Network
	if network == "" {
		network = "none"
	}
	created, err := r.Engine.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: "berth-gate-" + newID(), Config: cfg, HostConfig: &container.HostConfig{NetworkMode: container.NetworkMode(network)},
	})
	if err != nil {
		return fail("create gate container: %v", err)
	}
	defer r.remove(ctx, created.ID)

	waitCtx, cancel := context.WithTimeout(ctx, g.Timeout)
	defer cancel()
	if _, err := r.Engine.ContainerStart(waitCtx, created.ID, client.ContainerStartOptions{}); err != nil {
		return fail("start gate container: %v", err)
	}
	// Waiting for "not-running" after the start returns at once for a gate that already exited.
	wait := r.Engine.ContainerWait(waitCtx, created.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case w := <-wait.Result:
		res.ExitCode = int(w.StatusCode)
		res.Passed = w.StatusCode == 0
		if !res.Passed {
			res.Reason = "gate exited with code " + strconv.FormatInt(w.StatusCode, 10)
		}
	case err := <-wait.Error:
		if waitCtx.Err() != nil {
			res.TimedOut, res.Reason = true, fmt.Sprintf("gate did not finish within %s; killed", g.Timeout)
		} else {
			res.Reason = "wait for gate container: " + err.Error()
		}
	case <-waitCtx.Done():
		res.TimedOut, res.Reason = true, fmt.Sprintf("gate did not finish within %s; killed", g.Timeout)
	}
	res.Output = r.output(ctx, created.ID)
	return res
}

// output is the last lines a container wrote, stdout and stderr together.
func (r Runner) output(ctx context.Context, id string) []string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rc, err := r.Engine.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(outputLines)})
	if err != nil {
		return []string{"(output unavailable: " + err.Error() + ")"}
	}
	defer rc.Close()
	var buf bytes.Buffer
	_, _ = stdcopy.StdCopy(&buf, &buf, io.LimitReader(rc, 256<<10))
	return cmdline.LastLines(buf.Bytes(), outputLines)
}

// remove removes the gate container; it must not hide the gate's answer, so its own failure
// is only logged.
func (r Runner) remove(ctx context.Context, id string) {
	if _, err := r.Engine.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true}); err != nil {
		cmp.Or(r.Log, slog.New(slog.DiscardHandler)).Warn("remove unused container", "id", id, "err", err)
	}
}

// newID is a random name suffix, so gates of different services never collide.
func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
