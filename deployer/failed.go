package deployer

import (
	"log/slog"
	"slices"
	"strings"
	"time"
)

// A push of an image that a service already rolled back from is not tried again: in stop-first
// order every attempt is an outage, and a registry that redelivers, or a CI job that pushes the
// same build again, would repeat it. `berth deploy` by hand tries it anyway, and a successful
// deploy of the image forgets the failure.

// FailedImage is an image one of a service's deploys rolled back from (for a swarm service,
// the digest), which berth does not try again on that service.
type FailedImage struct {
	ID     string    `json:"id"`
	At     time.Time `json:"at"`     // when the deploy rolled back
	Reason string    `json:"reason"` // why
}

// keepFailed bounds the failed images remembered per service, newest kept.
const keepFailed = 10

// FailedImages lists the images service (project/service) rolled back from, oldest first.
func (d *Deployer) FailedImages(service string) []FailedImage {
	d.images.Lock()
	defer d.images.Unlock()
	return d.failed.load(d.log, service)
}

// failedBefore says whether service rolled back from image id, and when and why.
func (d *Deployer) failedBefore(service, id string) (FailedImage, bool) {
	d.images.Lock()
	defer d.images.Unlock()
	for _, f := range d.failed.load(d.log, service) {
		if f.ID == id {
			return f, true
		}
	}
	return FailedImage{}, false
}

// markFailed remembers that service rolled back from image id because of cause.
func (d *Deployer) markFailed(log *slog.Logger, service, id string, cause error) {
	reason := "rolled back"
	if cause != nil {
		reason = cause.Error()
	}
	d.images.Lock()
	defer d.images.Unlock()
	list := slices.DeleteFunc(d.failed.load(log, service), func(f FailedImage) bool { return f.ID == id })
	list = append(list, FailedImage{ID: id, At: time.Now().UTC(), Reason: reason})
	d.failed.save(log, service, list[max(len(list)-keepFailed, 0):])
}

// forgetFailed forgets a failure of image id once service deployed it.
func (d *Deployer) forgetFailed(log *slog.Logger, service, id string) {
	d.images.Lock()
	defer d.images.Unlock()
	list := d.failed.load(log, service)
	if kept := slices.DeleteFunc(slices.Clone(list), func(f FailedImage) bool { return f.ID == id }); len(kept) != len(list) {
		d.failed.save(log, service, kept)
	}
}

// shortImageID is an image ID as `docker images` shows it.
func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	return id[:min(12, len(id))]
}
