// Package mux serves several protocols on one listening port. It sniffs
// the first bytes of every connection once (package sniff) and hands the
// connection to the first route whose Matcher takes it: a route Listener
// that http.Server, gRPC or anything else serves unchanged, or a Handler
// called in the goroutine that sniffed it.
//
//	var m mux.Mux
//	h2 := m.Listen("h2c", mux.HTTP2())
//	m.Handle("vnc", mux.And(mux.WebSocket(), mux.PathPrefix("/vnc")), bridge) // a *wsbridge.Bridge
//	h1 := m.Listen("http1", mux.HTTP1())
//	go web.Serve(h2)
//	go web.Serve(h1)
//	err := m.Serve(ln) // mux.ErrClosed after m.Close or m.Shutdown
//
// A Mux has net/http's Server shape: a usable zero value, Serve for each
// listener (ServeConn for an accept loop of your own), a context per
// connection (BaseContext, ConnContext), Close and Shutdown, and
// RegisterOnShutdown. A Mux is itself a Handler, so one route's
// connections can be sniffed again by a Mux of routes of their own.
//
// It is built to be right where cmux is not:
//
//   - the accept loop never reads, and each connection is sniffed under a
//     deadline (SniffTimeout, 3 s) and a byte cap (MaxSniffBytes, 16 KiB);
//   - bytes are read once into one buffer and parsed once per read for all
//     routes; a route waiting for more bytes of its own protocol never
//     holds back a connection that another route can already decide;
//   - closing one route's Listener closes only that route; Close and
//     Shutdown end Serve even with silent clients connected, and every
//     route's Accept then returns an error matching net.ErrClosed;
//   - a silent connection holds no buffer, and the delivered *Conn
//     replays the sniffed bytes and then gets out of the way (NetConn,
//     io.WriterTo, io.ReaderFrom), so io.Copy between TCP connections
//     splices.
//
// On an HTTP/2 prior-knowledge connection whose routes wait for more than
// the client's SETTINGS (GRPC and HTTP2HeaderField wait for the first
// request's headers), the mux sends the SETTINGS frame that gRPC clients
// wait for, and keeps the client's acknowledgement of it from the server
// behind the route, which never sent those settings.
//
// With UpgradeOnly set, the port takes only protocol upgrades: a plain
// HTTP/1.x request is answered, on the raw connection, with 426 Upgrade
// Required naming the accepted tokens (RFC 9110 §15.5.22), followed by a
// lingering close so that the client reads it even while still sending a
// body. Malformed heads get 400, HTTP/2.0 spelled as text 505, heads over
// the cap 431, a WebSocket handshake of another version 426 with
// Sec-WebSocket-Version: 13 (RFC 6455 §4.4), and a ClientHello that no
// route takes a TLS unrecognized_name alert. Every rejection is counted by
// Reason in Stats.
package mux
