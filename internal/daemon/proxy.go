package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/portmux/portmux/internal/proxyproto"
	"github.com/portmux/portmux/internal/relay"
	"github.com/portmux/portmux/wsbridge"
)

// proxy is the Handler of a route with a backend (to:): it dials the
// backend, sends the PROXY header the route asks for, and relays bytes
// both ways (spliced between TCP sockets).
type proxy struct {
	d        *Daemon
	listener string
	rc       *RouteConfig
	dialer   *net.Dialer
	relay    *relay.Relay
}

func (d *Daemon) proxy(lc *ListenerConfig, rc *RouteConfig) *proxy {
	up := d.met.bytes(lc.Name, rc.Name, "up")
	down := d.met.bytes(lc.Name, rc.Name, "down")
	return &proxy{
		d:        d,
		listener: lc.Name,
		rc:       rc,
		// No TCP keepalive probes (three setsockopt calls a connection):
		// the relay's idle timeout ends dead connections.
		dialer: &net.Dialer{Timeout: rc.DialTimeout.or(defaultDialTimeout), KeepAlive: -1},
		relay: &relay.Relay{
			IdleTimeout: rc.IdleTimeout.or(defaultIdleTimeout),
			Moved: func(isUp bool, n int64) {
				if isUp {
					up.AddInt64(n)
				} else {
					down.AddInt64(n)
				}
			},
		},
	}
}

// dialError is a backend that could not be reached.
type dialError struct {
	backend string
	err     error
}

func (e *dialError) Error() string {
	return fmt.Sprintf("backend %s unreachable: %v", e.backend, e.err)
}
func (e *dialError) Unwrap() error { return e.err }

// ServeConn proxies c to the route's backend until both directions end.
func (p *proxy) ServeConn(ctx context.Context, c net.Conn) error {
	b, err := p.dial(ctx, c)
	if err != nil {
		c.Close()
		return err
	}
	if err := p.relay.Run(c, b, nil); err != nil {
		if !errors.Is(err, relay.ErrIdle) {
			p.d.log.Debug("relay ended", "listener", p.listener, "route", p.rc.Name, "err", err)
		}
		return err
	}
	return nil
}

// dial connects to the backend and writes the PROXY header the route asks
// for, carrying the client's addresses (those of a trusted PROXY header in
// front of us, if there was one).
func (p *proxy) dial(ctx context.Context, c net.Conn) (net.Conn, error) {
	b, err := p.dialer.DialContext(ctx, "tcp", p.rc.To)
	if err != nil {
		p.d.log.Warn("backend unreachable", "listener", p.listener, "route", p.rc.Name, "backend", p.rc.To, "err", err)
		return nil, &dialError{p.rc.To, err}
	}
	if p.rc.SendProxy == "" {
		return b, nil
	}
	var hdr []byte
	if p.rc.SendProxy == "v1" {
		hdr = proxyproto.AppendV1(nil, c.RemoteAddr(), c.LocalAddr())
	} else {
		hdr = proxyproto.AppendV2(nil, c.RemoteAddr(), c.LocalAddr())
	}
	b.SetWriteDeadline(time.Now().Add(p.dialer.Timeout))
	if _, err := b.Write(hdr); err != nil {
		b.Close()
		return nil, fmt.Errorf("writing the PROXY header to %s: %w", p.rc.To, err)
	}
	b.SetWriteDeadline(time.Time{})
	return b, nil
}

// bridge is the Handler of a bridge: route: the WebSocket is ended here
// and its messages bridged to the TCP backend. The connection's context
// ends with the listener's mux, at the end of the shutdown grace: the
// bridge then sends close 1001.
func (d *Daemon) bridge(rc *RouteConfig) *wsbridge.Bridge {
	return &wsbridge.Bridge{
		Backend:     rc.Bridge,
		DialTimeout: rc.DialTimeout.or(defaultDialTimeout),
		Text:        rc.Text,
		ProxyHeader: rc.SendProxy == "v2",
		Logger:      d.log,
		// idle_timeout means no data either way, as for proxied routes;
		// the Upgrader's own keeps its default (client silence, pings
		// answered).
		IdleTimeout: rc.IdleTimeout.or(defaultIdleTimeout),
	}
}

// outcomeOf classifies how a route's Handler ended.
func outcomeOf(err error) outcome {
	var de *dialError
	var ne net.Error
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, relay.ErrIdle):
		return outcomeIdleTimeout
	case errors.As(err, &de) && errors.As(err, &ne) && ne.Timeout():
		return outcomeDialTimeout
	case errors.As(err, &de), errors.Is(err, wsbridge.ErrBackendUnreachable):
		return outcomeDialError
	}
	return outcomeError
}
