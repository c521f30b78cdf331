// Command proxy is a minimal reverse proxy for berth's rollout tests: it runs in a container on
// a compose network and forwards every request to UPSTREAM, dialing and resolving the service
// name anew for each one, as a proxy that follows the engine's DNS does. Like nginx's
// proxy_next_upstream or Traefik's retry, it gives a connect that does not succeed quickly one
// more try: the engine's DNS may still name a container for a few milliseconds after it left
// the network, and a connect to that address never completes.
package main

import (
	"errors"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// retryConnect retries a request whose connection could not be made; nothing was sent then.
type retryConnect struct{ next http.RoundTripper }

func (r retryConnect) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	var op *net.OpError
	if err != nil && errors.As(err, &op) && op.Op == "dial" && req.Body == nil {
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
	p.Transport = retryConnect{&http.Transport{DisableKeepAlives: true, DialContext: dialer.DialContext}}
	log.Fatal(http.ListenAndServe(":8080", p))
}
