// Package wsbridge serves WebSocket (RFC 6455) on a raw net.Conn, with no
// net/http in the path: typically a *mux.Conn that a portmux route took
// because its first bytes were a WebSocket handshake, and which replays
// those bytes. Of the project's packages it imports only sniff (a leaf
// that imports none of them), to parse the request head, and
// internal/proxyproto, to write PROXY headers to a bridge's backend; never
// mux, so that it serves connections from any listener.
//
// Two ways to use it:
//
//   - Upgrader.Upgrade completes the handshake and returns a *Conn with a
//     small message API (ReadMessage, WriteMessage, CloseWith, Close) for
//     Go programs that want messages.
//   - Bridge.ServeConn does the handshake, dials a TCP backend and copies
//     between the two, websockify style: binary (or text) message payloads
//     become bytes to the backend and backend bytes become messages, so a
//     browser can reach VNC, SSH or a database through the port that
//     serves its web pages.
//
// The handshake follows RFC 6455 §4.2 and answers each defect as the RFCs
// say: 400 for a malformed request, 405 for a method other than GET, 426
// with Sec-WebSocket-Version: 13 for another version, 403 for an Origin
// outside the allow-list or a refusal by the Check hook, 431 for a head
// over MaxHeaderBytes, 505 for an HTTP version other than 1.x. The head
// is parsed by sniff.HTTP1Head, with the grammar a portmux mux applies:
// RFC 9112 strictly, so bare LF line ends, obsolete line folding,
// whitespace before a colon and control bytes in a field get 400, as do
// bytes that are no HTTP request, a PROXY header among them (it is not
// stripped here: put the bridge behind a mux that trusts it). Bytes the
// client sends right behind its handshake (before it has seen the 101) are
// kept as its first frames. Subprotocols are chosen by server preference,
// and permessage-deflate (RFC 7692) is accepted when enabled.
//
// Frames are read and written by this package over one buffer per
// direction per connection, with github.com/gobwas/ws for masking: the
// bridge's copy path allocates nothing per message, and ReadMessage at
// most the growth of the caller's buffer. Everything is bounded: the
// handshake by HandshakeTimeout and MaxHeaderBytes, messages by
// MaxMessageSize (after decompression: a deflate bomb stops at the limit
// with close 1009), silent clients by PingInterval and IdleTimeout (and a
// quiet bridge, both ways, by Bridge.IdleTimeout when set), each
// write by WriteTimeout and the closing handshake by CloseTimeout. Peer
// errors get the RFC's close code: 1002 for protocol errors (unmasked
// frame, reserved opcode or bit, fragmented or long control frame, bad
// continuation), 1007 for text that is not UTF-8, 1009 for a message over
// the limit, 1001 when idle.
//
// The package does no logging unless given a *slog.Logger.
package wsbridge
