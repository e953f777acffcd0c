package mux

import (
	"sync/atomic"
	"time"
)

// Reason says why the mux turned a connection away.
type Reason uint8

const (
	ReasonNone             Reason = iota
	ReasonNoMatch                 // no route matched, and no response applies
	ReasonTimeout                 // SniffTimeout passed first (408 if an HTTP head was partial)
	ReasonClientClosed            // the client closed before a decision
	ReasonReadError               // reading failed (e.g. a reset)
	ReasonBadRequest              // 400: a malformed HTTP/1 head or WebSocket handshake
	ReasonNotFound                // 404: a valid upgrade that no route's path took, on an upgrade-only port
	ReasonVersion                 // 505: an HTTP version other than 1.x
	ReasonTooLarge                // 431 for an HTTP head; close for a ClientHello
	ReasonUpgradeRequired         // 426: plain HTTP/1 (or another upgrade) on an upgrade-only port
	ReasonWebSocketVersion        // 426 with Sec-WebSocket-Version: 13 (RFC 6455 §4.4)
	ReasonTLSNoRoute              // a ClientHello no route took: alert unrecognized_name
	ReasonProxyUntrusted          // a PROXY header from a peer not in TrustedProxies
	ReasonProxyMalformed          // a broken PROXY header from a trusted peer
	ReasonRouteClosed             // the matching route's Listener was closed
	ReasonQueueFull               // the route Listener's queue stayed full
	ReasonShutdown                // the mux closed during sniffing
	ReasonHTTP2Settings           // no ACK of the mux's HTTP/2 SETTINGS within the limits: GOAWAY SETTINGS_TIMEOUT
	ReasonHTTP2Idle               // HTTP/2 SETTINGS exchanged but no request within HTTP2IdleTimeout: GOAWAY NO_ERROR
	numReasons
)

var reasonNames = [numReasons]string{
	"none", "no_match", "timeout", "client_closed", "read_error", "bad_request", "not_found",
	"http_version", "too_large", "upgrade_required", "websocket_version", "tls_no_route",
	"proxy_untrusted", "proxy_malformed", "route_closed", "queue_full", "shutdown",
	"http2_settings_unacked", "http2_idle",
}

// String returns the reason's metric label, e.g. "upgrade_required".
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

type stats struct {
	accepted   atomic.Uint64
	sniffNanos atomic.Uint64
	rejected   [numReasons]atomic.Uint64
}

// Stats is a snapshot of a Mux's counters.
type Stats struct {
	Accepted uint64            // connections accepted
	Routed   map[string]uint64 // delivered, by route name
	Rejected map[Reason]uint64 // turned away, by reason (only reasons seen)
	// SniffTime is the total time from accept to a routing decision over
	// the routed connections.
	SniffTime time.Duration
}

// Stats returns the current counters.
func (m *Mux) Stats() Stats {
	m.init()
	s := Stats{
		Accepted:  m.stats.accepted.Load(),
		Routed:    map[string]uint64{},
		Rejected:  map[Reason]uint64{},
		SniffTime: time.Duration(m.stats.sniffNanos.Load()),
	}
	for _, r := range m.loadRoutes() {
		s.Routed[r.name] += r.n.Load()
	}
	for i := range m.stats.rejected {
		if n := m.stats.rejected[i].Load(); n > 0 {
			s.Rejected[Reason(i)] = n
		}
	}
	return s
}
