package mux

import (
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/portmux/portmux/sniff"
)

// responses holds the error responses, built once per Mux.
type responses struct {
	once     sync.Once
	upgrade  response // 426 naming UpgradeOnly
	wsVer    response // 426 with Sec-WebSocket-Version: 13
	notFound response
}

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
)

func (m *Mux) buildResponses() {
	m.resp.once.Do(func() {
		tokens := strings.Join(m.UpgradeOnly, ", ")
		m.resp.upgrade = newResponse("426 Upgrade Required",
			[]string{"Upgrade: " + tokens, "Connection: Upgrade, close"},
			"This port accepts only protocol upgrades: "+tokens+".\n")
		m.resp.wsVer = newResponse("426 Upgrade Required",
			[]string{"Sec-WebSocket-Version: 13", "Upgrade: websocket", "Connection: Upgrade, close"},
			"This server speaks WebSocket version 13 (RFC 6455); repeat the handshake with Sec-WebSocket-Version: 13.\n")
		m.resp.notFound = newResponse("404 Not Found", nil, "No route serves this upgrade here.\n")
	})
}

func badRequest(err error) response {
	msg := "malformed request"
	if err != nil {
		msg = strings.TrimPrefix(err.Error(), "sniff: ")
	}
	return newResponse("400 Bad Request", nil, "Bad request: "+msg+".\n")
}

// noMatchReason says why no route took the connection, from the parse.
func (m *Mux) noMatchReason(res *sniff.Result, timedOut, eof bool) Reason {
	h := &res.HTTP1
	switch {
	case h.Verdict == sniff.Malformed:
		if errors.Is(h.Err, sniff.ErrVersion) {
			return ReasonVersion
		}
		return ReasonBadRequest
	case h.Verdict == sniff.TooLarge, res.TLS.Verdict == sniff.TooLarge:
		return ReasonTooLarge
	case h.Verdict == sniff.Match && h.UpgradeTo("websocket") && m.acceptsUpgrade("websocket"):
		switch h.WebSocket() {
		case nil:
			return ReasonNotFound
		case sniff.ErrWSVersion:
			return ReasonWebSocketVersion
		}
		return ReasonBadRequest
	case h.Verdict == sniff.Match && len(m.UpgradeOnly) > 0:
		for _, t := range m.UpgradeOnly {
			if h.UpgradeTo(t) {
				return ReasonNotFound
			}
		}
		return ReasonUpgradeRequired
	case res.TLS.Verdict == sniff.Match:
		return ReasonTLSNoRoute
	case timedOut:
		return ReasonTimeout
	case eof:
		return ReasonClientClosed
	}
	return ReasonNoMatch
}

// acceptsUpgrade reports whether the port takes upgrades to token: listed in
// UpgradeOnly, or (with no UpgradeOnly) asked for by any client at all,
// since the WebSocket defects get their RFC 6455 answers either way.
func (m *Mux) acceptsUpgrade(token string) bool {
	if len(m.UpgradeOnly) == 0 {
		return true
	}
	for _, t := range m.UpgradeOnly {
		if strings.EqualFold(t, token) {
			return true
		}
	}
	return false
}

// tlsAlertUnrecognizedName is a fatal alert record (RFC 8446 §6, RFC 6066 §3).
var tlsAlertUnrecognizedName = []byte{21, 3, 3, 0, 2, 2, 112}

// reject answers the connection as reason calls for, counts and reports
// it, and closes it. It owns st and buf.
func (m *Mux) reject(c *Conn, st *state, buf *[]byte, reason Reason) {
	res := &st.res
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
		m.buildResponses()
		resp, isHTTP = m.resp.upgrade, true
	case ReasonWebSocketVersion:
		m.buildResponses()
		resp, isHTTP = m.resp.wsVer, true
	case ReasonNotFound:
		m.buildResponses()
		resp, isHTTP = m.resp.notFound, true
	case ReasonTimeout:
		// A partial HTTP head gets 408; silence gets nothing.
		resp, isHTTP = respTimeout, res.HTTP1.Verdict == sniff.NeedMore && res.Proxy.Verdict != sniff.NeedMore &&
			buf != nil && len(*buf) > 0
	}
	head := string(res.HTTP1.Method) == "HEAD"
	statePool.Put(st)
	m.count(c, reason)

	nc := c.Conn
	switch {
	case isHTTP && !m.isClosing():
		nc.SetWriteDeadline(time.Now().Add(m.lingerTimeout()))
		var err error
		if head {
			_, err = nc.Write([]byte(resp.head))
		} else {
			_, err = writeString2(nc, resp.head, resp.body)
		}
		if err == nil {
			m.lingerClose(c, buf)
			return
		}
	case reason == ReasonTLSNoRoute && !m.isClosing():
		nc.SetWriteDeadline(time.Now().Add(m.lingerTimeout()))
		if _, err := nc.Write(tlsAlertUnrecognizedName); err == nil {
			m.lingerClose(c, buf) // so that a reset does not overtake the alert
			return
		}
	}
	if buf != nil {
		putBuf(buf)
	}
	m.untrack(c)
	nc.Close()
}

// writeString2 writes a and b in one write where the conn allows it.
func writeString2(c net.Conn, a, b string) (int, error) {
	bufs := net.Buffers{[]byte(a), []byte(b)}
	n, err := bufs.WriteTo(c)
	return int(n), err
}

// lingerClose half-closes c, then drains what the client still sends, for
// up to LingerTimeout and LingerBytes, so that the response is read rather
// than lost to a reset (RFC 9112 §9.6); then closes it.
func (m *Mux) lingerClose(c *Conn, buf *[]byte) {
	nc := c.Conn
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if buf == nil {
		buf = getBuf()
	}
	b := (*buf)[:cap(*buf)]
	nc.SetReadDeadline(time.Now().Add(m.lingerTimeout()))
	for left := m.lingerBytes(); left > 0 && !m.isClosing(); {
		n, err := nc.Read(b[:min(int64(len(b)), left)])
		left -= int64(n)
		if err != nil {
			break
		}
	}
	putBuf(buf)
	m.untrack(c)
	nc.Close()
}

// count records a rejection and reports it to OnReject and the Logger.
func (m *Mux) count(c *Conn, reason Reason) {
	m.stats.rejected[reason].Add(1)
	if m.OnReject != nil {
		m.OnReject(c.Conn, reason)
	}
	if m.Logger != nil {
		m.Logger.Debug("mux: rejected connection", "remote", c.Conn.RemoteAddr(), "reason", reason.String())
	}
}

// finish counts a rejection that gets no response, and closes c.
func (m *Mux) finish(c *Conn, reason Reason) {
	m.count(c, reason)
	m.untrack(c)
	c.Close()
}
