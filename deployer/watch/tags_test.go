package watch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestNewestTag(t *testing.T) {
	mixed := []string{"1.4.3", "1.5.0", "2.0.0-rc1", "1.5.0-alpine", "latest", "1.4.1", "1.5", "v1.6.0"}
	cases := []struct {
		current string
		tags    []string
		want    string
	}{
		{"1.4.2", mixed, "1.5.0"}, // not 2.0.0-rc1 (pre-release), 1.5 (two components), v1.6.0 (prefix)
		{"1.4.2", []string{"1.4.3"}, "1.4.3"},
		{"1.4.2", []string{"1.4.1", "1.4.2", "latest"}, ""},
		{"1.4.2", []string{"1.10.0", "1.9.9"}, "1.10.0"}, // numbers, not strings
		{"1.4.2-alpine", mixed, "1.5.0-alpine"},
		{"1.4.2-alpine", []string{"1.5.0-alpine3.20", "1.5.0-rc1-alpine"}, ""},
		{"v1.2.3", []string{"v1.2.4", "1.9.9", "v2.0.0-beta.1", "v1.3.0"}, "v1.3.0"},
		{"16.1", []string{"16.2", "17.0", "17.0.1", "17", "17.0-bookworm", "18beta1"}, "17.0"},
		{"16", []string{"16.2", "17", "18rc1"}, "17"},
		{"16.1-bookworm", []string{"16.2-bookworm", "16.3-alpine", "16.3"}, "16.2-bookworm"},
		{"latest", mixed, ""},
		{"2.0.0-rc1", mixed, ""}, // a pre-release is not watched for tags
		{"stable", []string{"1.0.0"}, ""},
	}
	for _, tc := range cases {
		if got := NewestTag(tc.current, tc.tags); got != tc.want {
			t.Errorf("NewestTag(%q, %v) = %q, want %q", tc.current, tc.tags, got, tc.want)
		}
	}
}

// TestNewerTagThrottled: a registry answering the tag list with 429 is a *Throttled with its
// Retry-After, after one request (no retry), as for Head; a fault a real registry cannot make.
func TestNewerTagThrottled(t *testing.T) {
	var lists atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/tags/list") {
			t.Errorf("%s %s: want only the tag list", r.Method, r.URL.Path)
		}
		lists.Add(1)
		w.Header().Set("Retry-After", "60")
		w.WriteHeader(http.StatusTooManyRequests)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, err := NewerTag(context.Background(), host+"/acme/app:1.4.2", nil, nil)
	var th *Throttled
	if !errors.As(err, &th) || th.Status != http.StatusTooManyRequests || th.RetryAfter != time.Minute {
		t.Fatalf("error %v, want a 429 throttle with Retry-After 1m", err)
	}
	if n := lists.Load(); n != 1 {
		t.Errorf("%d tag-list requests, want 1 (no retry)", n)
	}
	if tag, err := NewerTag(context.Background(), host+"/acme/app:latest", nil, nil); tag != "" || err != nil || lists.Load() != 1 {
		t.Errorf("latest: %q, %v, %d requests; want nothing listed", tag, err, lists.Load())
	}
}
