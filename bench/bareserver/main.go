// Command bareserver is the target of bench/loadtool.sh: a bare net/http
// server (no mux) answering every request with a short text body, so that
// wrk or h2load and "portmux bench" are compared against the same thing.
// With -h2c-addr it also serves HTTP/2 with prior knowledge (only) there;
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
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on (HTTP/1.1)")
	h2cAddr := flag.String("h2c-addr", "", "if set, an address to serve h2c (prior knowledge) on")
	echoAddr := flag.String("echo-addr", "", "if set, an address to echo raw TCP on")
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
	serve := func(addr string, p *http.Protocols) {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Fprintln(os.Stderr, "bareserver: listening on", ln.Addr())
		srv := &http.Server{Handler: handler, Protocols: p, ReadHeaderTimeout: 10 * time.Second}
		go func() { errc <- srv.Serve(ln) }()
	}
	serve(*addr, nil)
	if *h2cAddr != "" {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		serve(*h2cAddr, &p)
	}
	log.Fatal(<-errc)
}
