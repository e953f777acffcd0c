package daemon

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/portmux/portmux/mux"
)

// port is one listening socket and the mux that serves it for the
// socket's whole life: a reload gives the mux new settings
// (Mux.Reconfigure) and routes (Mux.SetRoutes), never a new mux.
type port struct {
	cfg  *ListenerConfig        // under Daemon.mu
	name atomic.Pointer[string] // the listener's name, for rejections' metrics
	ln   net.Listener
	m    *mux.Mux
	page *mux.Listener // the built-in page's connections, to the page server
	echo *echoServer
}

// openPort binds a listener's socket (one inherited from systemd if its
// address matches, else a new one, with SO_REUSEPORT if asked) and makes
// its mux. d.mu is held.
func (d *Daemon) openPort(lc *ListenerConfig) (*port, error) {
	ln := d.takeInherited(lc.Listen)
	if ln == nil {
		// No TCP keepalive probes (three setsockopt calls a connection):
		// the relay's idle timeout ends dead connections.
		lcfg := net.ListenConfig{KeepAlive: -1}
		if lc.ReusePort {
			lcfg.Control = reusePort
		}
		var err error
		ln, err = lcfg.Listen(context.Background(), "tcp", lc.Listen)
		if err != nil {
			return nil, err
		}
	}
	p := &port{cfg: lc, ln: ln, echo: newEchoServer()}
	p.name.Store(&lc.Name)
	p.m = &mux.Mux{
		Config: muxConfig(lc),
		Logger: d.log,
		OnReject: func(_ net.Conn, reason mux.Reason) {
			d.met.rejected(*p.name.Load(), reason)
		},
	}
	p.page = p.m.NewListener("page")
	p.m.SetRoutes(d.routes(p, lc))
	return p, nil
}

// muxConfig is a listener's configuration as the mux takes it. Zero
// values are the mux's defaults.
func muxConfig(lc *ListenerConfig) mux.Config {
	c := mux.Config{
		SniffTimeout:  time.Duration(lc.SniffTimeout),
		MaxSniffBytes: int(lc.MaxSniffBytes),
		MaxPending:    maxConns(lc),
		MaxConns:      maxConns(lc),
		LingerTimeout: time.Duration(lc.LingerTimeout),
		UpgradeOnly:   lc.UpgradeOnly,
	}
	if lc.ProxyProtocol.Accept {
		c.TrustedProxies = lc.ProxyProtocol.prefixes
	}
	return c
}

func maxConns(lc *ListenerConfig) int {
	if lc.MaxConnections > 0 {
		return lc.MaxConnections
	}
	return defaultMaxConnections
}

// takeInherited returns the inherited socket bound to addr, if any.
func (d *Daemon) takeInherited(addr string) net.Listener {
	for a, ln := range d.inherited {
		if sameAddr(a, addr) {
			delete(d.inherited, a)
			return ln
		}
	}
	return nil
}

func sameAddr(bound, configured string) bool {
	b, err1 := net.ResolveTCPAddr("tcp", bound)
	c, err2 := net.ResolveTCPAddr("tcp", configured)
	if err1 != nil || err2 != nil || b.Port != c.Port {
		return false
	}
	// systemd's ListenStream=8443 binds [::]:8443, which takes IPv4 too.
	unspecified := func(ip net.IP) bool { return ip == nil || ip.IsUnspecified() }
	return b.IP.Equal(c.IP) || unspecified(b.IP) && unspecified(c.IP)
}
