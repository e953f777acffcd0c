package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/wsbridge"
	"go.yaml.in/yaml/v3"
)

// Config is the daemon's YAML configuration (docs/configuration.md
// describes every key). Unknown keys are errors.
type Config struct {
	Listeners []*ListenerConfig `yaml:"listeners"`
	// Metrics is the address of the HTTP server for Prometheus text at
	// /metrics and readiness at /healthz; empty for none.
	Metrics string `yaml:"metrics"`
	// Grace bounds how long established connections may finish after
	// SIGINT or SIGTERM; default 10s.
	Grace Duration  `yaml:"grace"`
	Log   LogConfig `yaml:"log"`
}

// LogConfig chooses the log format ("text" or "json", default text) and
// level ("debug", "info", "warn", "error", default info).
type LogConfig struct {
	Format string `yaml:"format"`
	Level  string `yaml:"level"`
}

// ListenerConfig is one listening port and its routes.
type ListenerConfig struct {
	Listen string `yaml:"listen"`
	// Name labels the listener in metrics and logs, and identifies it
	// across reloads; default the listen address.
	Name string `yaml:"name"`
	// SniffTimeout bounds accept to routing decision; default
	// mux.DefaultSniffTimeout (3s).
	SniffTimeout Duration `yaml:"sniff_timeout"`
	// MaxSniffBytes bounds the bytes read before deciding; default
	// mux.DefaultMaxSniffBytes (16KiB).
	MaxSniffBytes Size `yaml:"max_sniff_bytes"`
	// MaxConnections bounds the connections being sniffed or served at
	// once; default 10000. Past it new connections wait to be accepted.
	MaxConnections int `yaml:"max_connections"`
	// LingerTimeout bounds writing an error response (400, 426, ...) and
	// draining after it; default mux.DefaultLingerTimeout (2s).
	LingerTimeout Duration       `yaml:"linger_timeout"`
	ProxyProtocol ProxyInConfig  `yaml:"proxy_protocol"`
	UpgradeOnly   []string       `yaml:"upgrade_only"`
	ReusePort     bool           `yaml:"reuse_port"`
	Routes        []*RouteConfig `yaml:"routes"`
	// OnTimeout is the backend for clients that send nothing within
	// SniffTimeout (server-speaks-first protocols such as SMTP).
	OnTimeout string `yaml:"on_timeout"`

	line int
}

// ProxyInConfig accepts PROXY v1/v2 headers from the trusted prefixes;
// from anyone else they are rejected and counted.
type ProxyInConfig struct {
	Accept  bool     `yaml:"accept"`
	Trusted []string `yaml:"trusted"`

	prefixes []netip.Prefix
}

// RouteConfig is one route: a match and where the connections go.
type RouteConfig struct {
	// Name labels the route in metrics and logs; default match and index,
	// e.g. "http1-3".
	Name string `yaml:"name"`
	// Match is one of http1, http2, grpc, websocket, upgrade, tls, ssh, any.
	Match string `yaml:"match"`
	// Path is a target prefix (http1, websocket, upgrade).
	Path string `yaml:"path"`
	// Upgrade lists the tokens of match: upgrade, e.g. [h2c].
	Upgrade []string `yaml:"upgrade"`
	// SNI and ALPN narrow match: tls; "*.example.com" is one label.
	SNI  []string `yaml:"sni"`
	ALPN []string `yaml:"alpn"`

	// To is the backend the connection is proxied to, bytes untouched.
	To string `yaml:"to"`
	// Bridge terminates a WebSocket (match: websocket) and bridges its
	// messages to the TCP backend at this address.
	Bridge string `yaml:"bridge"`
	// Text sends backend bytes as text messages on a bridge.
	Text bool `yaml:"text"`
	// Serve names a built-in service instead of a backend: "page" (the
	// demo page over HTTP/1.1 and h2c) or "echo" (WebSocket echo).
	Serve string `yaml:"serve"`

	// SendProxy writes a PROXY header ("v1" or "v2") to the backend.
	SendProxy string `yaml:"send_proxy"`
	// DialTimeout bounds connecting to the backend; default
	// wsbridge.DefaultDialTimeout (5s), for proxies and bridges alike.
	DialTimeout Duration `yaml:"dial_timeout"`
	// IdleTimeout ends a proxied connection when no byte moved either
	// way for this long; default 10m.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxConnections bounds this route's connections at once; 0 is no
	// bound beyond the listener's. Past it a connection is closed and
	// counted (outcome "route_limit").
	MaxConnections int `yaml:"max_connections"`

	line int
}

// Defaults of the keys that are zero. Those the library has are its own.
const (
	DefaultGrace          = 10 * time.Second
	defaultMaxConnections = mux.DefaultMaxPending
	defaultDialTimeout    = wsbridge.DefaultDialTimeout // for proxies and bridges alike
	defaultIdleTimeout    = 10 * time.Minute
)

var matches = []string{"http1", "http2", "grpc", "websocket", "upgrade", "tls", "ssh", "any"}

// Duration is a time.Duration written as "3s", "500ms", "1m30s".
type Duration time.Duration

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a duration (e.g. 3s, 500ms)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

func (d Duration) or(def time.Duration) time.Duration {
	if d > 0 {
		return time.Duration(d)
	}
	return def
}

// Size is a byte count written as 16384, "16KiB", "4MiB" or "1GiB".
type Size int64

func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := parseSize(n.Value)
	if err != nil || n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: %q is not a size (e.g. 16KiB, 4MiB, 1024)", n.Line, n.Value)
	}
	*s = Size(v)
	return nil
}

func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if t, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(t), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<40/mult {
		return 0, errors.New("bad size")
	}
	return n * mult, nil
}

// ConfigError is a configuration error at a line of the file.
type ConfigError struct {
	Line int
	Msg  string
}

func (e *ConfigError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return e.Msg
}

var unknownField = regexp.MustCompile(`field (\S+) not found in type \S+`)

// ParseConfig decodes and checks a configuration.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		// yaml names Go types ("field x not found in type main.RouteConfig").
		msg := unknownField.ReplaceAllString(err.Error(), `unknown key "$1"`)
		return nil, fmt.Errorf("config: %s", msg)
	}
	var root yaml.Node
	yaml.Unmarshal(data, &root)
	locate(&cfg, &root)
	if err := cfg.Check(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return &cfg, nil
}

// locate records the line of each listener and route, for errors.
func locate(cfg *Config, root *yaml.Node) {
	ls := child(root, "listeners")
	if ls == nil || ls.Kind != yaml.SequenceNode {
		return
	}
	for i, ln := range ls.Content {
		if i >= len(cfg.Listeners) || cfg.Listeners[i] == nil {
			break
		}
		cfg.Listeners[i].line = ln.Line
		rs := child(ln, "routes")
		if rs == nil || rs.Kind != yaml.SequenceNode {
			continue
		}
		for j, rn := range rs.Content {
			if j < len(cfg.Listeners[i].Routes) && cfg.Listeners[i].Routes[j] != nil {
				cfg.Listeners[i].Routes[j].line = rn.Line
			}
		}
	}
}

// child returns the value of key in mapping n (or in a document's mapping).
func child(n *yaml.Node, key string) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func errAt(line int, format string, args ...any) error {
	return &ConfigError{Line: line, Msg: fmt.Sprintf(format, args...)}
}

func checkAddr(line int, what, addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errAt(line, "%s %q is not host:port", what, addr)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return errAt(line, "%s %q has a bad port", what, addr)
	}
	if p == 0 && what != "listen" && what != "metrics" {
		return errAt(line, "%s %q: port 0 cannot be dialled", what, addr)
	}
	return nil
}

// checkName keeps metric labels and log fields plain.
func checkName(line int, what, name string) error {
	for _, c := range name {
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return errAt(line, "%s %q: use printable ASCII without spaces, quotes or backslashes", what, name)
		}
	}
	return nil
}

// Check validates a configuration that was changed after ParseConfig
// (as the command line's overrides of the demo's addresses do), filling
// in default names.
func (cfg *Config) Check() error {
	if len(cfg.Listeners) == 0 {
		return errors.New("no listeners")
	}
	switch cfg.Log.Format {
	case "", "text", "json":
	default:
		return fmt.Errorf("log format %q: want text or json", cfg.Log.Format)
	}
	switch cfg.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log level %q: want debug, info, warn or error", cfg.Log.Level)
	}
	if cfg.Metrics != "" {
		if err := checkAddr(0, "metrics", cfg.Metrics); err != nil {
			return err
		}
	}
	seen, names := map[string]int{}, map[string]int{}
	for i, l := range cfg.Listeners {
		if l == nil {
			return errors.New("an empty listener")
		}
		if err := l.check(); err != nil {
			return err
		}
		ephemeral := strings.HasSuffix(l.Listen, ":0")
		if prev, ok := seen[l.Listen]; ok && !ephemeral {
			return errAt(l.line, "listen %s is also at line %d", l.Listen, prev)
		}
		seen[l.Listen] = l.line
		if l.Name == "" {
			l.Name = l.Listen
			if _, taken := names[l.Name]; taken && ephemeral {
				l.Name = fmt.Sprintf("%s#%d", l.Listen, i+1)
			}
		}
		if err := checkName(l.line, "listener name", l.Name); err != nil {
			return err
		}
		if prev, ok := names[l.Name]; ok {
			return errAt(l.line, "listener name %q is also at line %d", l.Name, prev)
		}
		names[l.Name] = l.line
		if cfg.Metrics != "" && sameAddr(cfg.Metrics, l.Listen) {
			return errAt(l.line, "listen %s is also the metrics address", l.Listen)
		}
	}
	return nil
}

func (l *ListenerConfig) check() error {
	if err := checkAddr(l.line, "listen", l.Listen); err != nil {
		return err
	}
	if l.MaxSniffBytes != 0 && (l.MaxSniffBytes < 512 || l.MaxSniffBytes > 1<<20) {
		return errAt(l.line, "max_sniff_bytes %d: want 512 B to 1 MiB", l.MaxSniffBytes)
	}
	if l.MaxConnections < 0 {
		return errAt(l.line, "max_connections %d is negative", l.MaxConnections)
	}
	l.ProxyProtocol.prefixes = nil // check may run twice
	for _, t := range l.ProxyProtocol.Trusted {
		p, err := netip.ParsePrefix(t)
		if err != nil {
			a, aerr := netip.ParseAddr(t)
			if aerr != nil {
				return errAt(l.line, "proxy_protocol.trusted %q is not an address or prefix", t)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		l.ProxyProtocol.prefixes = append(l.ProxyProtocol.prefixes, p)
	}
	if l.ProxyProtocol.Accept && len(l.ProxyProtocol.prefixes) == 0 {
		return errAt(l.line, "proxy_protocol.accept needs trusted sources")
	}
	for _, t := range l.UpgradeOnly {
		if t == "" || strings.ContainsAny(t, " ,\t") || strings.ToLower(t) != t {
			return errAt(l.line, "upgrade_only token %q: want a lower-case token", t)
		}
	}
	if l.OnTimeout != "" {
		if err := checkAddr(l.line, "on_timeout", l.OnTimeout); err != nil {
			return err
		}
	}
	if len(l.Routes) == 0 && l.OnTimeout == "" {
		return errAt(l.line, "listener %s has no routes", l.Listen)
	}
	names := map[string]int{}
	for i, r := range l.Routes {
		if r == nil {
			return errAt(l.line, "route %d is empty", i+1)
		}
		if err := r.check(i); err != nil {
			return err
		}
		if err := checkName(r.line, "route name", r.Name); err != nil {
			return err
		}
		if prev, ok := names[r.Name]; ok {
			return errAt(r.line, "route name %q is also at line %d", r.Name, prev)
		}
		names[r.Name] = r.line
		for _, e := range l.Routes[:i] {
			if covers(e, r) {
				return errAt(r.line, "route %q is unreachable: route %q at line %d takes all its connections first", r.Name, e.Name, e.line)
			}
		}
	}
	return nil
}

func (r *RouteConfig) check(i int) error {
	if !slices.Contains(matches, r.Match) {
		return errAt(r.line, "match %q: want one of %s", r.Match, strings.Join(matches, ", "))
	}
	if r.Name == "" {
		r.Name = fmt.Sprintf("%s-%d", r.Match, i+1)
	}
	targets := 0
	for _, t := range []string{r.To, r.Bridge, r.Serve} {
		if t != "" {
			targets++
		}
	}
	if targets != 1 {
		return errAt(r.line, "route %q needs exactly one of to, bridge, serve", r.Name)
	}
	if r.To != "" {
		if err := checkAddr(r.line, "to", r.To); err != nil {
			return err
		}
	}
	if r.Bridge != "" {
		if r.Match != "websocket" {
			return errAt(r.line, "bridge needs match: websocket")
		}
		if err := checkAddr(r.line, "bridge", r.Bridge); err != nil {
			return err
		}
	}
	if r.Text && r.Bridge == "" {
		return errAt(r.line, "text applies to a bridge only")
	}
	switch r.Serve {
	case "", "page":
	case "echo":
		if r.Match != "websocket" {
			return errAt(r.line, "serve: echo needs match: websocket")
		}
	default:
		return errAt(r.line, "serve %q: want page or echo", r.Serve)
	}
	if r.Serve == "page" && !slices.Contains([]string{"http1", "http2"}, r.Match) {
		return errAt(r.line, "serve: page needs match: http1 or http2")
	}
	switch r.SendProxy {
	case "", "v1", "v2":
	default:
		return errAt(r.line, "send_proxy %q: want v1 or v2", r.SendProxy)
	}
	if r.SendProxy != "" && r.To == "" && r.Bridge == "" {
		return errAt(r.line, "send_proxy needs a backend (to or bridge)")
	}
	if r.SendProxy == "v1" && r.Bridge != "" {
		return errAt(r.line, "a bridge sends PROXY v2 only")
	}
	if r.Path != "" {
		if !slices.Contains([]string{"http1", "websocket", "upgrade"}, r.Match) {
			return errAt(r.line, "path applies to http1, websocket and upgrade only")
		}
		if !strings.HasPrefix(r.Path, "/") {
			return errAt(r.line, "path %q must start with /", r.Path)
		}
	}
	if (len(r.SNI) > 0 || len(r.ALPN) > 0) && r.Match != "tls" {
		return errAt(r.line, "sni and alpn apply to match: tls only")
	}
	if r.Match == "upgrade" && len(r.Upgrade) == 0 {
		return errAt(r.line, "match: upgrade needs upgrade tokens, e.g. [h2c]")
	}
	if len(r.Upgrade) > 0 && r.Match != "upgrade" {
		return errAt(r.line, "upgrade tokens apply to match: upgrade only")
	}
	for i, t := range r.Upgrade {
		r.Upgrade[i] = strings.ToLower(t)
	}
	if r.MaxConnections < 0 {
		return errAt(r.line, "max_connections %d is negative", r.MaxConnections)
	}
	return nil
}

// covers reports whether route a, placed before b, takes every connection
// that b would take, so that b can never match.
func covers(a, b *RouteConfig) bool {
	if a.Match == "any" {
		return true
	}
	pathCovers := a.Path == "" || strings.HasPrefix(b.Path, a.Path)
	switch a.Match {
	case "http1":
		// HTTP1 takes upgrade requests too.
		return slices.Contains([]string{"http1", "websocket", "upgrade"}, b.Match) && pathCovers
	case "upgrade":
		switch b.Match {
		case "websocket":
			return slices.Contains(a.Upgrade, "websocket") && pathCovers
		case "upgrade":
			return pathCovers && !slices.ContainsFunc(b.Upgrade, func(t string) bool { return !slices.Contains(a.Upgrade, t) })
		}
	case "websocket":
		return b.Match == "websocket" && pathCovers
	case "http2":
		return b.Match == "http2" || b.Match == "grpc"
	case "grpc":
		return b.Match == "grpc"
	case "ssh":
		return b.Match == "ssh"
	case "tls":
		if b.Match != "tls" {
			return false
		}
		sniCovers := len(a.SNI) == 0 || len(b.SNI) > 0 && !slices.ContainsFunc(b.SNI, func(n string) bool {
			return !slices.ContainsFunc(a.SNI, func(m string) bool { return strings.EqualFold(m, n) })
		})
		alpnCovers := len(a.ALPN) == 0 || len(b.ALPN) > 0 && !slices.ContainsFunc(b.ALPN, func(p string) bool { return !slices.Contains(a.ALPN, p) })
		return sniCovers && alpnCovers
	}
	return false
}
