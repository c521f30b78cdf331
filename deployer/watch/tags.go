package watch

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// LabelTagPolicy is the service's tag policy (deployer.LabelTagPolicy names the same label);
// with TagPolicySemver a notify-only service is also told of newer tags.
const (
	LabelTagPolicy  = "berth.tag-policy"
	TagPolicySemver = "semver"
)

// versionTag splits a tag into prefix, numeric components and suffix: v1.2.3, 16.1, 1.4.2-alpine.
var versionTag = regexp.MustCompile(`^([A-Za-z_-]*?)([0-9]+(?:\.[0-9]+){0,3})([-_][A-Za-z0-9._-]*)?$`)

// preRelease marks a suffix as a pre-release (2.0.0-rc1, 1.5.0-beta.2-alpine), never reported.
var preRelease = regexp.MustCompile(`(?i)^[-_.]?(alpha|beta|rc|pre|preview|dev|snapshot|nightly|canary)`)

// tagShape is a version tag taken apart; two tags of the same shape differ only in their numbers.
type tagShape struct {
	prefix, suffix string
	nums           []int
}

func parseTag(tag string) (tagShape, bool) {
	m := versionTag.FindStringSubmatch(tag)
	if m == nil || preRelease.MatchString(m[3]) {
		return tagShape{}, false
	}
	s := tagShape{prefix: m[1], suffix: m[3]}
	for _, p := range strings.Split(m[2], ".") {
		n, err := strconv.Atoi(p)
		if err != nil {
			return tagShape{}, false
		}
		s.nums = append(s.nums, n)
	}
	return s, true
}

func (s tagShape) sameShape(o tagShape) bool {
	return s.prefix == o.prefix && s.suffix == o.suffix && len(s.nums) == len(o.nums)
}

// compare orders two tags of the same shape by their numbers: -1, 0 or 1.
func (s tagShape) compare(o tagShape) int {
	for i := range s.nums {
		switch {
		case s.nums[i] < o.nums[i]:
			return -1
		case s.nums[i] > o.nums[i]:
			return 1
		}
	}
	return 0
}

// IsVersionTag says whether tag is a version NewestTag can compare (not a pre-release, not latest).
func IsVersionTag(tag string) bool {
	_, ok := parseTag(tag)
	return ok
}

// NewestTag is the greatest of tags that has current's shape (prefix, number of components,
// suffix such as -alpine) and is greater than current; "" when there is none or current is not
// a version tag. Pre-releases are ignored.
func NewestTag(current string, tags []string) string {
	cur, ok := parseTag(current)
	if !ok {
		return ""
	}
	best, bestTag := cur, ""
	for _, t := range tags {
		s, ok := parseTag(t)
		if ok && s.sameShape(cur) && s.compare(best) > 0 {
			best, bestTag = s, t
		}
	}
	return bestTag
}

// NewerTag lists ref's repository's tags and returns the newest one of ref's tag's shape that
// is greater than it ("" when none). As Head: the pulls' credentials, no retry, and a 429 or
// 5xx is a *Throttled.
func NewerTag(ctx context.Context, ref string, kc authn.Keychain, rt http.RoundTripper) (string, error) {
	r, err := name.NewTag(ref)
	if err != nil {
		return "", fmt.Errorf("image reference %q: %w", ref, err)
	}
	if !IsVersionTag(r.TagStr()) {
		return "", nil // nothing to list for: no tag could be newer
	}
	if rt == nil {
		rt = remote.DefaultTransport
	}
	if kc == nil {
		kc = authn.NewMultiKeychain()
	}
	rec := &retryAfter{base: rt}
	tags, err := remote.List(r.Context(), remote.WithContext(ctx), remote.WithAuthFromKeychain(kc), remote.WithTransport(rec),
		remote.WithRetryStatusCodes(), remote.WithRetryPredicate(func(error) bool { return false }))
	if err != nil {
		if th := rec.throttled(err); th != nil {
			return "", th
		}
		return "", fmt.Errorf("list the tags of %s: %w", r.Context().Name(), err)
	}
	return NewestTag(r.TagStr(), tags), nil
}
