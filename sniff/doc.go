// Package sniff classifies the first bytes of a connection: an HTTP/1.x
// request head, the HTTP/2 prior-knowledge preface, a TLS ClientHello, an
// SSH identification string, and a PROXY protocol v1 or v2 header before
// any of them.
//
// One call to [Result.Parse] runs every parser once over the bytes received
// so far and fills a [Result] that every routing rule reads: a rule that
// needs the Upgrade tokens and one that needs the TLS server name look at
// the same parse. Each parser answers with a [Verdict]: [Match], [NoMatch],
// [NeedMore] (a valid prefix: read more and parse again), [TooLarge] (the
// head does not end within the byte limit), or, for HTTP/1 only,
// [Malformed] (HTTP, but broken: answer 400, or 505 for [ErrVersion]).
// A server that speaks only HTTP/1 calls [HTTP1Head.Parse] instead, which
// runs the HTTP/1 parser alone, and reads the fields with
// [HTTP1Head.Fields]: one grammar for the mux and for such a server.
//
// The package is pure: no I/O, no goroutines, no state outside the Result,
// and no allocation. Results point into the caller's buffer instead of
// copying. Parsing is all-or-nothing per call, so the caller accumulates
// reads in one buffer and parses it again after each; a verdict other than
// NeedMore never changes as bytes are added, whatever the split.
//
// The rules followed are those of RFC 9110 and RFC 9112 for HTTP/1.1 (an
// upgrade needs the "upgrade" Connection option and is ignored in
// HTTP/1.0, §7.8; whitespace before a field's colon, obsolete line folding,
// bare CR or LF and control bytes are rejected), RFC 6455 §4.2.1 for the
// WebSocket opening handshake, RFC 9113 §3.4 for the HTTP/2 preface,
// RFC 8446 for ClientHello records (reassembled across any number of
// records), RFC 4253 §4.2 for SSH, and HAProxy's PROXY protocol
// specification for versions 1 and 2.
package sniff
