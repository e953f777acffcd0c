// Package h2c serves HTTP/2 without TLS ("h2c") beside HTTP/1.1, on the
// maintained net/http server, for connections that a multiplexer (package
// mux, or any net.Listener) hands over.
//
// One Server holds one http.Server: its Handler, timeouts, MaxHeaderBytes
// and HTTP2 settings (max concurrent streams, frame sizes, ...) apply to
// every listener it serves, HTTP/1.1 and HTTP/2 alike. Serve recognises
// the HTTP/2 connection preface (RFC 9113 §3.4) on each connection, so the
// same Server can serve a mux route of prior-knowledge h2c and a route of
// HTTP/1.1 at once, and Shutdown drains both:
//
//	srv := &h2c.Server{HTTP: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
//	go srv.Serve(m.Listen("h2c", mux.HTTP2()))
//	go srv.Serve(m.Listen("http1", mux.HTTP1()))
//
// With AllowUpgrade set, an HTTP/1.1 request carrying "Upgrade: h2c" (RFC
// 7540 §3.2) is switched to HTTP/2: the server answers 101 Switching
// Protocols and the response to that first request arrives on stream 1.
// RFC 9113 deprecates this upgrade and front proxies that forward it blindly
// let clients smuggle requests past them ("h2c smuggling"), so it is off by
// default. A request whose body exceeds MaxUpgradeBodyBytes is served over
// HTTP/1.1 without upgrading, as RFC 7540 §3.2 allows; an invalid or
// repeated HTTP2-Settings header gets 400 Bad Request.
//
// net/http has no API to start HTTP/2 on a connection with a request that
// arrived over HTTP/1.1, so the upgrade is built from public parts only:
// the handler reads the body, hijacks the connection, writes the 101, and
// hands the same server a connection whose first bytes, as net/http reads
// them, are the client's preface, one SETTINGS frame that carries the
// HTTP2-Settings values followed by the client's own, and the first
// request's HEADERS on stream 1. Merging the two sets of settings into the
// client's frame means the server acknowledges exactly the one SETTINGS
// frame that the client sent; the 101 itself acknowledges the
// HTTP2-Settings values (RFC 7540 §3.2.1). The body and trailers do not
// travel as DATA frames, which would count against flow-control windows
// the client never spent: stream 1's HEADERS carry a random token, and
// the handler wrapper gives the request its body back. Anything but the
// HTTP/2 preface after the 101 ends the connection with GOAWAY and is
// never read as HTTP/1.1.
//
// This package is not golang.org/x/net/http2/h2c, whose NewHandler
// serves h2c with x/net's own (deprecated) HTTP/2 server; this one keeps
// net/http's. A program that needs both imports one under another name.
package h2c
