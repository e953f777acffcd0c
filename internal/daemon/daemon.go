package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// Daemon runs a Config. Start it, Reload it with new configurations, and
// Shutdown it once; its methods are safe for concurrent use.
type Daemon struct {
	log  *slog.Logger
	met  *daemonMetrics
	page *pageServer

	mu        sync.Mutex
	cfg       *Config
	ports     map[string]*port // by listener name
	draining  map[*port]bool   // dropped by a reload, finishing their connections
	limits    map[string]*limiter
	inherited map[string]net.Listener // systemd socket activation, by address
	wg        sync.WaitGroup

	metricsSrv *http.Server
}

// New returns a Daemon for cfg that logs to log.
func New(cfg *Config, log *slog.Logger) *Daemon {
	return &Daemon{
		log:      log,
		met:      newMetrics(),
		page:     newPageServer(),
		cfg:      cfg,
		ports:    map[string]*port{},
		draining: map[*port]bool{},
		limits:   map[string]*limiter{},
	}
}

// Start opens every listener and the metrics server, and serves. On an
// error nothing is left open.
func (d *Daemon) Start() error {
	inh, err := inheritedListeners()
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inherited = inh
	var opened []*port
	for _, lc := range d.cfg.Listeners {
		p, err := d.openPort(lc)
		if err != nil {
			for _, p := range opened {
				p.ln.Close()
			}
			return err
		}
		opened = append(opened, p)
	}
	for addr, ln := range d.inherited {
		// Clients would wait in its backlog for nobody: refuse them.
		d.log.Error("socket activation: no listener of the configuration matches this socket; closing it", "address", addr)
		ln.Close()
	}
	if d.cfg.Metrics != "" {
		ln, err := net.Listen("tcp", d.cfg.Metrics)
		if err != nil {
			for _, p := range opened {
				p.ln.Close()
			}
			return fmt.Errorf("metrics: %w", err)
		}
		d.metricsSrv = &http.Server{Handler: d.met.handler(), ReadHeaderTimeout: 5 * time.Second}
		d.wg.Go(func() { d.metricsSrv.Serve(ln) })
	}
	for _, p := range opened {
		d.ports[p.cfg.Name] = p
		d.serve(p)
	}
	d.met.ready.Store(true)
	return nil
}

// Addrs returns the bound address of each listener, in configuration
// order.
func (d *Daemon) Addrs() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, lc := range d.cfg.Listeners {
		if p := d.ports[lc.Name]; p != nil {
			out = append(out, p.ln.Addr().String())
		}
	}
	return out
}

// Config returns the configuration in force.
func (d *Daemon) Config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// serve runs p's mux on its socket until it is shut down.
func (d *Daemon) serve(p *port) {
	d.wg.Go(func() { p.m.Serve(p.ln) })
	d.page.serve(p.page)
}

// Shutdown stops accepting everywhere, tells the echo's clients it is
// going away (close 1001), and lets connections finish until ctx ends;
// then the bridges' clients get close 1001 too, and what is left is
// closed. It returns an error if connections had to be closed; Handlers
// whose connections it closed end on their own.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.met.ready.Store(false)
	d.mu.Lock()
	var ports []*port
	for _, p := range d.ports {
		ports = append(ports, p)
	}
	for p := range d.draining {
		ports = append(ports, p)
	}
	d.mu.Unlock()
	for _, p := range ports {
		p.echo.goAway()
	}

	var mu sync.Mutex
	var drained error
	var wg sync.WaitGroup
	for _, p := range ports {
		wg.Go(func() {
			if err := p.m.Shutdown(ctx); err != nil {
				mu.Lock()
				drained = err
				mu.Unlock()
			}
		})
	}
	wg.Go(func() {
		if err := d.page.shutdown(ctx); err != nil {
			mu.Lock()
			drained = err
			mu.Unlock()
		}
	})
	wg.Wait()
	if d.metricsSrv != nil {
		d.metricsSrv.Close()
	}
	d.wg.Wait()
	if drained != nil {
		return fmt.Errorf("connections still open after the grace period were closed: %w", drained)
	}
	return nil
}
