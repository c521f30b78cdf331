package handler

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// TrustedProxies are the networks of the reverse proxies whose forwarding headers berth
// believes. A request from any other peer is attributed to the peer itself, whatever its
// forwarding header says, so a client cannot choose the address it is rate-limited and
// logged under.
type TrustedProxies []netip.Prefix

// ParseTrustedProxies reads a comma-separated list of CIDRs or bare addresses
// ("10.0.0.0/8, 172.18.0.1"); blanks are dropped.
func ParseTrustedProxies(s string) (TrustedProxies, error) {
	var out TrustedProxies
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("%q is neither an address nor a CIDR such as 172.18.0.0/16", f)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("%q is not a CIDR such as 172.18.0.0/16: %v", f, err)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

func (tp TrustedProxies) contains(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range tp {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request comes from: its TCP peer, or, when that peer is a
// trusted proxy, the nearest address in header's chain that is not itself a trusted proxy.
// Entries left of that one were written by the client and are never believed, and no other
// forwarding header is read: a proxy that passes a client's own Forwarded through untouched
// cannot let the client pick its address. forwarded reports whether header was present.
func (tp TrustedProxies) clientAddr(r *http.Request, header string) (addr netip.Addr, forwarded bool) {
	peer := peerAddr(r.RemoteAddr)
	chain := forwardedFor(r.Header, header)
	if len(chain) == 0 || !peer.IsValid() || !tp.contains(peer) {
		return peer, len(chain) > 0
	}
	addr = peer
	for i := len(chain) - 1; i >= 0; i-- {
		hop := chain[i]
		if !hop.IsValid() {
			break // an unreadable hop: stop at the last address a trusted proxy vouched for
		}
		addr = hop
		if !tp.contains(hop) {
			break
		}
	}
	return addr, true
}

// peerAddr parses http.Request.RemoteAddr ("ip:port"); invalid when it is not an IP.
func peerAddr(remote string) netip.Addr {
	if ap, err := netip.ParseAddrPort(remote); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// forwardedFor lists the client chain header records, nearest hop last: the for= parameters
// of the standard Forwarded header when header is "Forwarded", else header's comma-separated
// addresses (X-Forwarded-For, X-Real-IP). Entries that are not addresses (obfuscated
// identifiers, "unknown") come out invalid.
func forwardedFor(h http.Header, header string) []netip.Addr {
	var out []netip.Addr
	values := h.Values(header)
	if strings.EqualFold(header, "Forwarded") {
		for _, v := range values {
			for _, elem := range strings.Split(v, ",") {
				for _, pair := range strings.Split(elem, ";") {
					k, val, ok := strings.Cut(strings.TrimSpace(pair), "=")
					if ok && strings.EqualFold(k, "for") {
						out = append(out, parseHop(val))
					}
				}
			}
		}
		return out
	}
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, parseHop(f))
			}
		}
	}
	return out
}

// parseHop reads one hop: 192.0.2.7, "[2001:db8::1]:4711", 192.0.2.7:4711.
func parseHop(s string) netip.Addr {
	s = strings.Trim(strings.TrimSpace(s), `"`)
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}
