// Package daemon is the engine of the portmux command: it serves a
// Config's listeners, each with a mux.Mux whose routes proxy to backends,
// bridge WebSockets to TCP, or serve the built-in page and echo; it
// reloads a new Config without closing the sockets that stay; and it
// exports metrics. The command (cmd/portmux) is its flags, signals and
// wiring.
//
// The files hold one concern each: daemon.go the lifecycle (Start,
// Shutdown), config.go the YAML schema and its checks, listener.go a
// listening port and its mux, routes.go the routes a listener's
// configuration makes, proxy.go the proxied and bridged routes, page.go
// and echo.go the built-in services, reload.go the reload, metrics.go the
// metrics, and sockets_*.go systemd's sockets and SO_REUSEPORT.
package daemon
