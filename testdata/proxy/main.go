// Command proxy is a minimal reverse proxy for berth's rollout tests: it runs in a container on
// a compose network and forwards every request to UPSTREAM, dialing and resolving the service
// name anew for each one, as a proxy that follows the engine's DNS does.
package main

import (
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	target, err := url.Parse(os.Getenv("UPSTREAM"))
	if err != nil {
		log.Fatal(err)
	}
	p := httputil.NewSingleHostReverseProxy(target)
	p.Transport = &http.Transport{DisableKeepAlives: true}
	log.Fatal(http.ListenAndServe(":8080", p))
}
