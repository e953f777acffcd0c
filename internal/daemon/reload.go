package daemon

import (
	"context"
	"strings"
)

// Reload reads a new configuration with load and applies it; a failure of
// either is counted (portmux_reloads_total{outcome="error"}) and leaves
// the running configuration in place. Ports that stay (by name and
// address, or by address alone for a listener renamed) keep their sockets
// and their mux, which takes the new settings and routes at once:
// connections accepted from then on see them, established ones are not
// touched. New ports open; dropped ports stop accepting and finish their
// connections. On an error nothing changes.
func (d *Daemon) Reload(load func() (*Config, error)) error {
	cfg, err := load()
	if err != nil {
		d.met.reload(false)
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	claimed := map[*port]bool{}
	match := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if p, ok := d.ports[lc.Name]; ok && sameAddr(p.cfg.Listen, lc.Listen) {
			match[lc.Name], claimed[p] = p, true
		}
	}
	for _, lc := range cfg.Listeners {
		if _, ok := match[lc.Name]; ok {
			continue
		}
		for _, p := range d.ports {
			// An ephemeral port (":0") names no address to find again.
			if !claimed[p] && !strings.HasSuffix(p.cfg.Listen, ":0") && sameAddr(p.cfg.Listen, lc.Listen) {
				match[lc.Name], claimed[p] = p, true
				break
			}
		}
	}
	opened := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if _, ok := match[lc.Name]; ok {
			continue
		}
		p, err := d.openPort(lc)
		if err != nil {
			for _, p := range opened {
				p.ln.Close()
			}
			d.met.reload(false)
			return err
		}
		opened[lc.Name] = p
	}
	next := map[string]*port{}
	for _, lc := range cfg.Listeners {
		if p, ok := opened[lc.Name]; ok {
			next[lc.Name] = p
			d.serve(p)
			continue
		}
		p := match[lc.Name]
		p.cfg = lc
		p.name.Store(&lc.Name)
		p.m.Reload(muxConfig(lc), d.routes(p, lc))
		next[lc.Name] = p
	}
	for _, p := range d.ports {
		if !claimed[p] {
			d.drain(p)
		}
	}
	d.ports, d.cfg = next, cfg
	d.met.reload(true)
	return nil
}

// drain stops a port that a reload dropped: it stops accepting and lets
// its connections (bridges and echoes included) finish, then is
// forgotten; Shutdown ends what is left of it. d.mu is held.
func (d *Daemon) drain(p *port) {
	d.draining[p] = true
	p.ln.Close()
	d.wg.Go(func() {
		p.m.Shutdown(context.Background())
		d.mu.Lock()
		delete(d.draining, p)
		d.mu.Unlock()
	})
}
