// Command proxy is a minimal reverse proxy for berth's rollout tests: it runs in a container on
// a compose network and forwards every request to UPSTREAM, dialing and resolving the service
// name anew for each one, as a proxy that follows the engine's DNS does. Like nginx's
// proxy_next_upstream or Traefik's retry, it gives a GET that got no answer one more try, on a
// fresh connection: the engine's DNS may still name a container for a few milliseconds after it
// left the network, and a connect to that address never completes; a request in flight when it
// left gets no answer either. Two failed tries in a row are an outage.
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

// retryOnce retries a bodiless request that got no answer at all.
type retryOnce struct{ next http.RoundTripper }

func (r retryOnce) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil && req.Body == nil {
		return r.next.RoundTrip(req)
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
	p.Transport = retryOnce{&http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	log.Fatal(http.ListenAndServe(":8080", p))
}
