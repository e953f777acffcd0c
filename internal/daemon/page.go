package daemon

import (
	"context"
	_ "embed"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/mux"
)

//go:embed page.html
var page []byte

// pageServer is the built-in page (serve: page) over HTTP/1.1 and h2c:
// one http.Server for every listener, each of which hands it its page
// routes' connections through a mux.Listener.
type pageServer struct {
	srv *h2c.Server
	wg  sync.WaitGroup
}

func newPageServer() *pageServer {
	return &pageServer{srv: &h2c.Server{HTTP: &http.Server{
		Handler:           site(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}}}
}

// serve serves l until it is closed.
func (s *pageServer) serve(l *mux.Listener) {
	s.wg.Go(func() { s.srv.Serve(l) })
}

// shutdown lets requests in flight finish until ctx ends, then closes
// what is left, and waits for every serve to return.
func (s *pageServer) shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	s.srv.Close()
	s.wg.Wait()
	return err
}

// site serves the page and a plain-text answer that names the protocol.
func site() http.Handler {
	mx := http.NewServeMux()
	mx.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "" && !acceptsHTML(r) {
			fmt.Fprintf(w, "hello from portmux over %s\n", r.Proto)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("X-Protocol", r.Proto)
		w.Write(page)
	})
	mx.HandleFunc("GET /proto", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s\n", r.Proto)
	})
	return mx
}

func acceptsHTML(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept") {
		if strings.Contains(v, "text/html") {
			return true
		}
	}
	return false
}
