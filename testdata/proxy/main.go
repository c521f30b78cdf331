// Command proxy is a minimal reverse proxy for berth's rollout tests: it runs in a container on
// a compose network and forwards every request to UPSTREAM, dialing and resolving the service
// name anew for each one, as a proxy that follows the engine's DNS does. Like nginx's
// proxy_next_upstream or Traefik's retry, it tries a GET that got no answer again, on a fresh
// connection, for up to 3 s (at most 10 tries): the engine's DNS may still name a container for
// several hundred milliseconds after it left the network, over a second on a loaded machine
// (CI saw four connects 300 ms apart all go to the departed address), and a connect to that
// address never completes; a request already sent to the old container when it left the
// network never gets its answer (seen once in ~100 under load), so a try waits at most 1 s for
// the response headers.
package main

import (
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// retry tries a bodiless request that got no answer again, resolving anew each time, until
// 3 s have passed or 10 tries were made.
type retry struct{ next http.RoundTripper }

func (r retry) RoundTrip(req *http.Request) (*http.Response, error) {
	giveUp := time.Now().Add(3 * time.Second)
	resp, err := r.next.RoundTrip(req)
	for try := 1; try < 10 && err != nil && req.Body == nil && time.Now().Before(giveUp); try++ {
		resp, err = r.next.RoundTrip(req)
	}
	return resp, err
}

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(target)
	dialer := &net.Dialer{Timeout: 300 * time.Millisecond}
	p.Transport = retry{&http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext, ResponseHeaderTimeout: time.Second}}
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		http.Error(w, err.Error(), http.StatusBadGateway) // the test reports why
	}
	log.Fatal(http.ListenAndServe(":8080", p))
}
