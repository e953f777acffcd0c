package h2c_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/mux"
)

// One handler over HTTP/1.1, prior-knowledge h2c and Upgrade: h2c, on one
// multiplexed port, with shared settings and one graceful shutdown.
func Example() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	m := new(mux.Mux)
	srv := &h2c.Server{
		HTTP: &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprintf(w, "hello over %s", r.Proto)
			}),
			ReadHeaderTimeout: 5 * time.Second,
			IdleTimeout:       time.Minute,
			HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: 100},
		},
		AllowUpgrade: true, // off by default; see the package doc
	}
	go srv.Serve(m.Listen("h2c", mux.HTTP2()))
	go srv.Serve(m.Listen("http1", mux.HTTP1())) // upgrades arrive here too
	go m.Serve(ln)

	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	h2 := &http.Client{Transport: &http.Transport{Protocols: &p}}
	for _, c := range []*http.Client{h2, http.DefaultClient} {
		resp, err := c.Get("http://" + ln.Addr().String() + "/")
		if err != nil {
			panic(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		fmt.Println(string(body))
	}
	h2.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	m.Shutdown(ctx)
	srv.Shutdown(ctx)
	// Output:
	// hello over HTTP/2.0
	// hello over HTTP/1.1
}
