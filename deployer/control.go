package deployer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/deployer/compose"
	"github.com/berth-dev/berth/deployer/fault"
	"github.com/berth-dev/berth/deployer/registry"
	"github.com/berth-dev/berth/deployer/watch"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/moby/client"
)

// The compose service labels that control berth per service.
const (
	// LabelEnable "false" opts a service out; with Options.OptIn only "true" opts it in.
	LabelEnable = "berth.enable"
	// LabelTagPolicy is TagPolicyExact (the default) or TagPolicySemver.
	LabelTagPolicy = watch.LabelTagPolicy // the same label tells watch mode to report newer tags
)

// Tag policies.
const (
	// TagPolicyExact deploys every push of the tag the service names.
	TagPolicyExact = "exact"
	// TagPolicySemver deploys a push of the service's (moving) tag only when the pushed image's
	// org.opencontainers.image.version is a semantic version greater than the running image's.
	TagPolicySemver = watch.TagPolicySemver
)

// Outcomes of the per-service controls and the dry run.
const (
	OutcomeSkipped     = "skipped"      // the tag policy refused the pushed image, or it was pushed before the deployed one; nothing runs differently
	OutcomeWouldDeploy = "would-deploy" // DRY_RUN: everything short of changing the engine was done
)

// versionLabel is the OCI annotation the semver policy compares.
const versionLabel = ociLabelPrefix + "version"

// selects says why berth leaves a service with these labels alone, or "" when it deploys it.
func (d *Deployer) selects(labels types.Labels) string {
	v, set := labels[LabelEnable]
	enabled, err := strconv.ParseBool(strings.TrimSpace(v))
	switch {
	case set && err != nil:
		return fmt.Sprintf("label %s=%q is neither true nor false", LabelEnable, v)
	case set && !enabled:
		return LabelEnable + "=false"
	case !set && d.optIn:
		return "OPT_IN=true and the service has no label " + LabelEnable + "=true"
	}
	if p := labels[LabelTagPolicy]; p != "" && p != TagPolicyExact && p != TagPolicySemver {
		return fmt.Sprintf("label %s=%q is neither %s nor %s", LabelTagPolicy, p, TagPolicyExact, TagPolicySemver)
	}
	return ""
}

// tagPolicy is the service's tag policy, TagPolicyExact unless labelled otherwise.
func tagPolicy(labels types.Labels) string {
	if labels[LabelTagPolicy] == TagPolicySemver {
		return TagPolicySemver
	}
	return TagPolicyExact
}

// precheck runs before a deploy touches a container: in a dry run it plans the deploy and returns
// OutcomeWouldDeploy; under the semver policy it pulls the pushed image and returns
// OutcomeSkipped unless its version is greater. "" with no error lets the deploy go on.
func (d *Deployer) precheck(ctx context.Context, log *slog.Logger, j job) (string, error) {
	if d.dryRun {
		if err := d.plan(ctx, log, j); err != nil {
			return OutcomeFailed, err
		}
		return OutcomeWouldDeploy, nil
	}
	if j.dependent {
		return "", nil
	}
	p, err := d.projectFor(ctx, j.project)
	if err != nil {
		return OutcomeFailed, err
	}
	s, ok := p.Services[j.service]
	if !ok || tagPolicy(s.Labels) != TagPolicySemver {
		return "", nil
	}
	return d.semverCheck(ctx, log, j, p.Name, s)
}

// semverCheck pulls the pushed image and compares its version label with the running one's. A
// refused image gives the tag back to the running image, so a later `docker compose up` does
// not pick up what berth refused.
func (d *Deployer) semverCheck(ctx context.Context, log *slog.Logger, j job, project string, s types.ServiceConfig) (string, error) {
	existing, err := d.serviceContainers(ctx, project, s.Name)
	if err != nil {
		return OutcomeFailed, err
	}
	running, runningID := "", ""
	if len(existing) > 0 {
		runningID = existing[0].ImageID
		if img, err := d.eng.ImageInspect(ctx, runningID); err == nil && img.Config != nil {
			running = img.Config.Labels[versionLabel]
		}
	}
	if err := d.pullPinned(ctx, s.Image, j.req.Digest); err != nil {
		return OutcomeFailed, err
	}
	img, err := d.eng.ImageInspect(ctx, s.Image)
	if err != nil {
		return OutcomeFailed, fmt.Errorf("inspect pulled image %s: %w", s.Image, err)
	}
	pushed := ""
	if img.Config != nil {
		pushed = img.Config.Labels[versionLabel]
	}
	why := ""
	switch pv, ok := parseSemver(pushed); {
	case !ok:
		why = fmt.Sprintf("the pushed image's %s %q is not a semantic version", versionLabel, pushed)
	case runningID == "" || img.ID == runningID:
		return "", nil // nothing runs yet, or the same image: deploy as usual
	default:
		if rv, ok := parseSemver(running); ok && compareSemver(pv, rv) <= 0 {
			why = fmt.Sprintf("pushed version %s is not greater than running version %s", pushed, running)
		}
	}
	if why == "" {
		return "", nil
	}
	if runningID != "" && img.ID != runningID {
		if _, err := d.eng.ImageTag(ctx, client.ImageTagOptions{Source: runningID, Target: s.Image}); err != nil {
			log.Warn("give the tag back to the running image", "ref", s.Image, "err", err)
		}
	}
	log.Info("push refused by tag policy "+TagPolicySemver, "reason", why)
	return OutcomeSkipped, fault.Errorf(fault.Conflict, "%s", why)
}

// plan is a dry run: it loads the service, checks what a deploy checks, and logs the engine
// calls a deploy would make, making none that changes anything.
func (d *Deployer) plan(ctx context.Context, log *slog.Logger, j job) error {
	p, err := d.projectFor(ctx, j.project)
	if err != nil {
		return err
	}
	s, ok := p.Services[j.service]
	if !ok {
		return fault.Errorf(fault.NotFound, "service %s is no longer in project %s", j.service, p.Name)
	}
	if err := compose.CheckSupported(p, s); err != nil {
		return err
	}
	if err := d.resolveServiceReferences(ctx, p, &s); err != nil {
		return err
	}
	existing, err := d.serviceContainers(ctx, p.Name, s.Name)
	if err != nil {
		return err
	}
	hash, err := compose.ServiceHash(s, compose.VersionFor(d.version, existing))
	if err != nil {
		return err
	}
	ref := s.Image
	if j.req.Digest != "" {
		if ref, err = registry.Pinned(s.Image, j.req.Digest); err != nil {
			return err
		}
	}
	log.Info("dry run: would pull", "ref", ref)
	for n := 1; n <= compose.Replicas(s); n++ {
		log.Info("dry run: would recreate", "container", compose.ContainerName(p.Name, s, n), "config_hash", hash)
	}
	return nil
}

// semver is a parsed semantic version: MAJOR.MINOR.PATCH, an optional pre-release.
type semver struct {
	nums [3]int
	pre  []string
}

// parseSemver reads a semantic version (2.0.0), with or without a leading "v"; build
// metadata (+…) is ignored, as the spec says for precedence.
func parseSemver(s string) (semver, bool) {
	s = strings.TrimPrefix(strings.TrimSpace(s), "v")
	s, _, _ = strings.Cut(s, "+")
	core, pre, hasPre := strings.Cut(s, "-")
	parts := strings.Split(core, ".")
	var v semver
	if len(parts) != 3 {
		return v, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 || (len(p) > 1 && p[0] == '0') || strings.TrimLeft(p, "0123456789") != "" {
			return v, false
		}
		v.nums[i] = n
	}
	if hasPre {
		v.pre = strings.Split(pre, ".")
		for _, id := range v.pre {
			if id == "" {
				return v, false
			}
		}
	}
	return v, true
}

// compareSemver orders versions by semantic-version precedence: -1, 0 or 1.
func compareSemver(a, b semver) int {
	for i := range a.nums {
		if a.nums[i] != b.nums[i] {
			return cmp.Compare(a.nums[i], b.nums[i])
		}
	}
	switch {
	case len(a.pre) == 0 && len(b.pre) == 0:
		return 0
	case len(a.pre) == 0:
		return 1 // a release is greater than its pre-releases
	case len(b.pre) == 0:
		return -1
	}
	for i := 0; i < len(a.pre) && i < len(b.pre); i++ {
		x, y := a.pre[i], b.pre[i]
		nx, ex := strconv.Atoi(x)
		ny, ey := strconv.Atoi(y)
		switch {
		case ex == nil && ey == nil && nx != ny:
			return cmp.Compare(nx, ny)
		case ex == nil && ey != nil:
			return -1 // numeric identifiers sort before alphanumeric ones
		case ex != nil && ey == nil:
			return 1
		case x != y:
			return strings.Compare(x, y)
		}
	}
	return cmp.Compare(len(a.pre), len(b.pre))
}
