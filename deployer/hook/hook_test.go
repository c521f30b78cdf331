package hook

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/deployer/fault"
)

func TestLabels(t *testing.T) {
	for labels, bad := range map[string]map[string]string{
		"berth.hook.timeout":    {LabelPostStart: "true", LabelTimeout: "-1s"},
		"berth.hook.pre-stop":   {LabelPreStop: "[1, 2]"},
		"berth.hook.post-start": {LabelPostStart: "[]"},
	} {
		if _, err := For(bad); fault.KindOf(err) != fault.Invalid || !strings.Contains(err.Error(), labels) {
			t.Errorf("%v: %v, want invalid naming %s", bad, err, labels)
		}
	}
	if h, err := For(map[string]string{"other": "x"}); err != nil || h.Any() {
		t.Errorf("a service without hook labels has hooks %+v (%v)", h, err)
	}
}

func TestOutputTail(t *testing.T) {
	if got := outputTail(nil); got != "" {
		t.Errorf("outputTail(nil) = %q, want empty", got)
	}
	if got, want := outputTail([]byte("1\n2\n3\n4\n5\n6\n")), "; last output: | 2 | 3 | 4 | 5 | 6"; got != want {
		t.Errorf("outputTail = %q, want %q", got, want)
	}
}
