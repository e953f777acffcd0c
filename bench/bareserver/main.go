// Command bareserver is the target of bench/loadtool.sh: a bare net/http
// server (no mux) answering every request with a short text body, so that
// wrk or h2load and the load tool (bench/cmd/loadgen) are compared against the same thing.
// With -mux portmux or -mux cmux the HTTP/1.1 port is served through that
// multiplexer with three routes (h2, WebSocket, HTTP/1), for
// bench/embedded.sh. With -h2c-addr it also serves HTTP/2 with prior
// knowledge (only) there;
// with -echo-addr it also echoes raw TCP there (for bulk runs: the echo
// splices on Linux, so it costs the machine little).
//
//	go run ./bench/bareserver -addr 127.0.0.1:8090 -h2c-addr 127.0.0.1:8091
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/soheilhy/cmux"

	"github.com/portmux/portmux/mux"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on (HTTP/1.1)")
	h2cAddr := flag.String("h2c-addr", "", "if set, an address to serve h2c (prior knowledge) on")
	echoAddr := flag.String("echo-addr", "", "if set, an address to echo raw TCP on")
	via := flag.String("mux", "none", "serve the HTTP/1.1 port through a multiplexer: none, portmux or cmux (three routes)")
	flag.Parse()
	if *echoAddr != "" {
		ln, err := net.Listen("tcp", *echoAddr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "bareserver: echoing on", ln.Addr())
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					log.Fatal(err)
				}
				go func() {
					defer c.Close()
					io.Copy(c, c)
				}()
			}
		}()
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "hello from the bare server\n")
	})
	errc := make(chan error, 2)
	serve := func(addr string, p *http.Protocols, via string) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "bareserver: listening on", ln.Addr(), "through", via)
		srv := &http.Server{Handler: handler, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
		switch via {
		case "none":
			go func() { errc <- srv.Serve(ln) }()
		case "portmux":
			m := new(mux.Mux)
			m.Listen("h2", mux.HTTP2())
			m.Listen("websocket", mux.WebSocket())
			h1 := m.Listen("http1", mux.HTTP1())
			go func() { errc <- srv.Serve(h1) }()
			go func() { errc <- m.Serve(ln) }()
		case "cmux":
			m := cmux.New(ln)
			m.SetReadTimeout(3 * time.Second)
			m.Match(cmux.HTTP2())
			m.Match(cmux.HTTP1HeaderField("Upgrade", "websocket"))
			h1 := m.Match(cmux.HTTP1Fast())
			go func() { errc <- srv.Serve(h1) }()
			go func() { errc <- m.Serve() }()
		default:
			log.Fatalf("-mux %q: want none, portmux or cmux", via)
		}
	}
	serve(*addr, nil, *via)
	if *h2cAddr != "" {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		serve(*h2cAddr, &p, "none")
	}
	log.Fatal(<-errc)
}
