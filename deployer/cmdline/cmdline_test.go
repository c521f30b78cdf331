package cmdline

import (
	"slices"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		bad  bool
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "echo hi", want: []string{"sh", "-c", "echo hi"}},
		{in: `["sh", "-c", "x"]`, want: []string{"sh", "-c", "x"}},
		{in: "[oops", bad: true},
		{in: "[]", bad: true},
		{in: "[1, 2]", bad: true},
	} {
		got, err := Parse(tc.in)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "JSON array") {
				t.Errorf("Parse(%q) = %v, %v; want an error naming the JSON array", tc.in, got, err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("Parse(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	long := strings.Repeat("x", 600)
	got := LastLines([]byte("a\r\n\nb\nc\n"+long+"\n"), 3)
	want := []string{"b", "c", strings.Repeat("x", 512) + "…"}
	if !slices.Equal(got, want) {
		t.Errorf("LastLines = %q, want %q", got, want)
	}
	if got := LastLines(nil, 5); len(got) != 0 {
		t.Errorf("LastLines(nil) = %q, want none", got)
	}
}
