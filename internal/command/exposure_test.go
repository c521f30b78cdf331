package command

import (
	"log/slog"
	"net"
	"strings"
	"testing"
)

// TestPlainHTTPWarning: plain HTTP off loopback with a URL secret enabled draws the one warning.
func TestPlainHTTPWarning(t *testing.T) {
	for _, tc := range []struct {
		addr  string
		creds []string
		warn  bool
	}{
		{"0.0.0.0:8080", []string{"SECRET"}, true},
		{"[::]:8080", []string{"QUAY_SECRET"}, true},
		{"192.0.2.10:8080", []string{"SECRET"}, true},
		{"127.0.0.1:8080", []string{"SECRET"}, false},
		{"[::1]:8080", []string{"SECRET"}, false},
		{"0.0.0.0:8080", nil, false},
	} {
		var out strings.Builder
		a, _ := net.ResolveTCPAddr("tcp", tc.addr)
		w := &web{ln: addrListener{a}, mode: "off"}
		w.warnPlainHTTP(tc.creds, slog.New(slog.NewTextHandler(&out, nil)))
		if got := strings.Count(out.String(), "serving plain HTTP"); got != map[bool]int{true: 1, false: 0}[tc.warn] {
			t.Errorf("%s with %v: %d warnings, want warn=%v", tc.addr, tc.creds, got, tc.warn)
		}
	}
}

// addrListener is a listener that only has an address, for the warning's decision.
type addrListener struct{ addr net.Addr }

func (addrListener) Accept() (net.Conn, error) { return nil, net.ErrClosed }
func (addrListener) Close() error              { return nil }
func (l addrListener) Addr() net.Addr          { return l.addr }
