package deployer

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/berth-dev/berth/deployer/state"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// A deploy that does not end on the image it pulled (rolled back, skipped, vetoed, failed) must
// not leave the service's image reference on that image: compose recreates a container whose
// image label differs from the image ID its reference resolves to locally, so the next routine
// `docker compose up -d` would recreate the service onto the image berth refused, with no
// health gate. berth re-tags the previous image, as Podman's auto-update does; the pulled image
// keeps its ID and repository digest, for inspection and `berth deploy`.

// restoreReference points ref back at the image the service's previous containers run when
// this deploy's pull moved it to pulled, as the recorded step "retag", unless other services
// deployed by the same push share ref (re-tagging would undo their deploy, or race with it).
// Nothing is recorded when there is nothing to do; when it cannot be done the step's error says why.
func (d *Deployer) restoreReference(ctx context.Context, prog *progress, ref, pulled string, previous, shared []string) {
	back, why := d.previousImage(ctx, ref, pulled, previous)
	if back == "" && why == nil {
		return
	}
	if why == nil && len(shared) > 0 {
		back, why = "", fmt.Errorf("%s is also the image of %s, which the same push deploys; berth leaves it naming %s, so `docker compose up -d` would recreate this service onto it",
			ref, strings.Join(shared, ", "), shortImageID(pulled))
	}
	err := prog.do("retag", ref, func() error {
		if why != nil {
			return why
		}
		return d.retag(ctx, ref, back)
	})
	if err != nil {
		prog.log.Warn("the image reference still names the image berth did not deploy", "ref", ref, "image_id", pulled, "err", err)
		return
	}
	prog.log.Info("the image reference names the running image again", "ref", ref, "image_id", back, "pulled", pulled)
}

// previousImage returns the image ref must name again: the one the previous containers run,
// provided ref still names pulled (a reference someone moved since is theirs). It returns ""
// when there is nothing to do, and an error saying why ref cannot be restored.
func (d *Deployer) previousImage(ctx context.Context, ref, pulled string, previous []string) (string, error) {
	if ref == "" || pulled == "" || strings.Contains(ref, "@") {
		return "", nil // the deploy pulled nothing, or compose resolves the pinned digest, not the tag
	}
	ids := slices.DeleteFunc(slices.Clone(previous), func(id string) bool { return id == "" })
	slices.Sort(ids)
	ids = slices.Compact(ids)
	switch {
	case len(ids) == 0:
		return "", nil // no previous container: compose would create the service anyway
	case len(ids) > 1:
		short := make([]string, len(ids))
		for i, id := range ids {
			short[i] = shortImageID(id)
		}
		return "", fmt.Errorf("the replicas run different images (%s), which no one reference can name; %s still names %s, so `docker compose up -d` would recreate them onto it",
			strings.Join(short, ", "), ref, shortImageID(pulled))
	case ids[0] == pulled:
		return "", nil
	}
	cur, err := d.eng.ImageInspect(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return ids[0], nil // untagged meanwhile: compose would pull the image berth refused
	}
	if err != nil {
		return "", unavailable("inspect "+ref, err)
	}
	if cur.ID != pulled {
		what := "already names the running image"
		if cur.ID != ids[0] {
			what = "was moved by someone else since the pull; left as it is"
		}
		d.log.Info("image reference "+what, "ref", ref, "image_id", cur.ID)
		return "", nil
	}
	return ids[0], nil
}

// retag makes ref name image id, which a container of the service still runs, so it exists.
func (d *Deployer) retag(ctx context.Context, ref, id string) error {
	if _, err := d.eng.ImageTag(ctx, client.ImageTagOptions{Source: id, Target: ref}); err != nil {
		if cerrdefs.IsNotFound(err) {
			return fmt.Errorf("the previous image %s is no longer on the engine, so %s still names the image berth did not deploy and `docker compose up -d` would recreate onto it: tag the running image as %s or push a fixed one",
				shortImageID(id), ref, ref)
		}
		return fmt.Errorf("tag %s as %s: %w", shortImageID(id), ref, err)
	}
	return nil
}

// previousImages lists the images the old containers of j's swaps run.
func previousImages(j *state.Journal) []string {
	var out []string
	for _, sw := range j.Swaps {
		if sw.OldID != "" {
			out = append(out, sw.OldImage)
		}
	}
	return out
}

// runningImages lists the images the service's containers were made from.
func runningImages(existing []container.Summary) []string {
	out := make([]string, len(existing))
	for i, c := range existing {
		out[i] = c.ImageID
	}
	return out
}

// shareReference notes on each compose job the other services of the push: all of them track
// the pushed tag, so they name the same local image reference.
func shareReference(jobs []job) {
	var names []string
	for _, j := range jobs {
		if j.swarmService == "" {
			names = append(names, j.projectName+"/"+j.service)
		}
	}
	if len(names) < 2 {
		return
	}
	for i := range jobs {
		if jobs[i].swarmService == "" {
			self := jobs[i].projectName + "/" + jobs[i].service
			jobs[i].sharedWith = slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == self })
		}
	}
}
