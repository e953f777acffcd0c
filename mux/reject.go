package mux

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/portmux/portmux/sniff"
)

// response is an HTTP/1.1 error response; head ends with the blank line.
type response struct{ head, body string }

func newResponse(status string, extra []string, body string) response {
	var h strings.Builder
	h.WriteString("HTTP/1.1 " + status + "\r\n")
	for _, e := range extra {
		h.WriteString(e + "\r\n")
	}
	if len(extra) == 0 || !strings.HasPrefix(extra[len(extra)-1], "Connection:") {
		h.WriteString("Connection: close\r\n")
	}
	h.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	h.WriteString("Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n")
	return response{h.String(), body}
}

var (
	respTimeout = newResponse("408 Request Timeout", nil, "The request head did not arrive in time.\n")
	respVersion = newResponse("505 HTTP Version Not Supported", nil,
		"This port speaks HTTP/1.1 in text; HTTP/2 needs its connection preface (RFC 9113 §3.4).\n")
	respTooLarge = newResponse("431 Request Header Fields Too Large", nil, "The request head is larger than this port accepts.\n")
	respWSVer    = newResponse("426 Upgrade Required",
		[]string{"Sec-WebSocket-Version: 13", "Upgrade: websocket", "Connection: Upgrade, close"},
		"This server speaks WebSocket version 13 (RFC 6455); repeat the handshake with Sec-WebSocket-Version: 13.\n")
	respNotFound = newResponse("404 Not Found", nil, "No route serves this upgrade here.\n")
)

func badRequest(err error) response {
	msg := "malformed request"
	if err != nil {
		msg = strings.TrimPrefix(err.Error(), "sniff: ")
	}
	return newResponse("400 Bad Request", nil, "Bad request: "+msg+".\n")
}

// tlsAlertUnrecognizedName is a fatal alert record (RFC 8446 §6, RFC 6066 §3).
var tlsAlertUnrecognizedName = []byte{21, 3, 3, 0, 2, 2, 112}

// noMatchReason says why no route took the connection, from the parse.
func (pd *pending) noMatchReason() Reason {
	res := &pd.p.res
	h := &res.HTTP1
	switch {
	case h.Verdict == sniff.Malformed:
		if errors.Is(h.Err, sniff.ErrVersion) {
			return ReasonVersion
		}
		return ReasonBadRequest
	case h.Verdict == sniff.TooLarge, res.TLS.Verdict == sniff.TooLarge:
		return ReasonTooLarge
	case h.Verdict == sniff.Match && h.UpgradeTo("websocket") && pd.s.acceptsUpgrade("websocket"):
		switch h.WebSocket() {
		case nil:
			return ReasonNotFound
		case sniff.ErrWSVersion:
			return ReasonWebSocketVersion
		}
		return ReasonBadRequest
	case h.Verdict == sniff.Match && len(pd.s.UpgradeOnly) > 0:
		for _, t := range pd.s.UpgradeOnly {
			if h.UpgradeTo(t) {
				return ReasonNotFound
			}
		}
		return ReasonUpgradeRequired
	case res.TLS.Verdict == sniff.Match:
		return ReasonTLSNoRoute
	case pd.timedOut:
		return ReasonTimeout
	case pd.eof:
		return ReasonClientClosed
	}
	return ReasonNoMatch
}

// reject answers the connection as reason calls for (an HTTP error
// response or a TLS alert, followed by a lingering close), counts and
// reports it, and closes it. It runs while the bytes are judged.
func (pd *pending) reject(reason Reason) {
	res := &pd.p.res
	var resp response
	var isHTTP bool
	switch reason {
	case ReasonBadRequest:
		err := res.HTTP1.Err
		if res.HTTP1.Verdict == sniff.Match {
			err = res.HTTP1.WebSocket()
		}
		resp, isHTTP = badRequest(err), true
	case ReasonVersion:
		resp, isHTTP = respVersion, true
	case ReasonTooLarge:
		resp, isHTTP = respTooLarge, res.HTTP1.Verdict == sniff.TooLarge
	case ReasonUpgradeRequired:
		resp, isHTTP = pd.s.upgrade, true
	case ReasonWebSocketVersion:
		resp, isHTTP = respWSVer, true
	case ReasonNotFound:
		resp, isHTTP = respNotFound, true
	case ReasonTimeout:
		// A partial HTTP head gets 408; silence gets nothing.
		resp, isHTTP = respTimeout, res.HTTP1.Verdict == sniff.NeedMore && res.Proxy.Verdict != sniff.NeedMore &&
			pd.buf != nil && len(*pd.buf) > 0
	}
	head := string(res.HTTP1.Method) == "HEAD"
	pd.m.count(pd.c, reason)

	nc := pd.c.nc
	switch {
	case isHTTP && !pd.m.isClosing():
		nc.SetWriteDeadline(time.Now().Add(pd.s.lingerTimeout))
		var err error
		if head {
			_, err = nc.Write([]byte(resp.head))
		} else {
			_, err = writeString2(nc, resp.head, resp.body)
		}
		if err == nil {
			pd.lingerClose()
			return
		}
	case reason == ReasonTLSNoRoute && !pd.m.isClosing():
		nc.SetWriteDeadline(time.Now().Add(pd.s.lingerTimeout))
		if _, err := nc.Write(tlsAlertUnrecognizedName); err == nil {
			pd.lingerClose() // so that a reset does not overtake the alert
			return
		}
	}
	pd.m.untrack(pd.c)
	pd.c.Close()
}

// writeString2 writes a and b in one write where the conn allows it.
func writeString2(c net.Conn, a, b string) (int, error) {
	bufs := net.Buffers{[]byte(a), []byte(b)}
	n, err := bufs.WriteTo(c)
	return int(n), err
}

// lingerClose half-closes the connection, then drains what the client
// still sends, for up to LingerTimeout and LingerBytes, so that the
// response is read rather than lost to a reset (RFC 9112 §9.6); then
// closes it.
func (pd *pending) lingerClose() {
	nc := pd.c.nc
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	buf := pd.buf
	if buf == nil {
		buf = getBuf()
	}
	pd.buf = nil
	b := (*buf)[:cap(*buf)]
	nc.SetReadDeadline(time.Now().Add(pd.s.lingerTimeout))
	for left := pd.s.lingerBytes; left > 0 && !pd.m.isClosing(); {
		n, err := nc.Read(b[:min(int64(len(b)), left)])
		left -= int64(n)
		if err != nil {
			break
		}
	}
	putBuf(buf)
	pd.m.untrack(pd.c)
	pd.c.Close()
}

// finish counts a rejection that gets no response, and closes c.
func (pd *pending) finish(reason Reason) { pd.m.finish(pd.c, reason) }

func (m *Mux) finish(c *Conn, reason Reason) {
	m.count(c, reason)
	m.untrack(c)
	c.Close()
}

// count records a rejection and reports it to OnReject and the Logger.
func (m *Mux) count(c net.Conn, reason Reason) {
	m.stats.rejected[reason].Add(1)
	if m.OnReject != nil {
		if mc, ok := c.(*Conn); ok {
			c = mc.nc
		}
		m.OnReject(c, reason)
	}
	if m.Logger != nil {
		m.Logger.Debug("mux: rejected connection", "remote", c.RemoteAddr(), "reason", reason.String())
	}
}
