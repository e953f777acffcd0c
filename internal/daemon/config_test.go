package daemon

import (
	"strings"
	"testing"
	"time"
)

const issueExample = `
listeners:
  - listen: 127.0.0.1:8443
    sniff_timeout: 3s
    max_sniff_bytes: 16KiB
    max_connections: 10000
    proxy_protocol: { accept: true, trusted: [127.0.0.1/32] }
    upgrade_only: [websocket]
    routes:
      - match: http2
        to: 127.0.0.1:9002
      - match: websocket
        path: /vnc
        bridge: 127.0.0.1:5900
      - match: websocket
        to: 127.0.0.1:9003
      - match: http1
        to: 127.0.0.1:9001
        send_proxy: v2
      - match: tls
        sni: ["*.example.com"]
        alpn: [h2, http/1.1]
        to: 127.0.0.1:9443
      - match: ssh
        to: 127.0.0.1:22
      - match: any
        to: 127.0.0.1:9999
    on_timeout: 127.0.0.1:22
metrics: 127.0.0.1:9100
`

func TestConfigExample(t *testing.T) {
	cfg, err := ParseConfig([]byte(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	l := cfg.Listeners[0]
	if time.Duration(l.SniffTimeout) != 3*time.Second || l.MaxSniffBytes != 16<<10 || len(l.Routes) != 7 ||
		l.Routes[1].Name != "websocket-2" || l.Routes[1].line != 12 || len(l.ProxyProtocol.prefixes) != 1 {
		t.Errorf("parsed %+v; routes[1] %+v", l, l.Routes[1])
	}
}

func TestConfigErrors(t *testing.T) {
	base := "listeners:\n  - listen: 127.0.0.1:1\n    routes:\n"
	tests := []struct{ yaml, want string }{
		{base + "      - match: http1\n        to: 127.0.0.1:2\n        colour: red\n", `line 6: unknown key "colour"`},
		{"listeners:\n  - listen: 127.0.0.1:1\n    sniff_timeout: 3 seconds\n    routes: [{match: any, to: 127.0.0.1:2}]\n", `line 3: "3 seconds" is not a duration`},
		{"listeners:\n  - listen: 127.0.0.1:1\n    max_sniff_bytes: 16 parsecs\n    routes: [{match: any, to: 127.0.0.1:2}]\n", `line 3: "16 parsecs" is not a size`},
		{base + "      - match: any\n        to: 127.0.0.1:2\n      - match: ssh\n        to: 127.0.0.1:3\n", `line 6: route "ssh-2" is unreachable: route "any-1" at line 4`},
		{base + "      - match: http1\n        to: 127.0.0.1:2\n      - match: websocket\n        path: /ws\n        to: 127.0.0.1:3\n", `line 6: route "websocket-2" is unreachable: route "http1-1"`},
		{base + "      - match: http2\n        to: 127.0.0.1:2\n      - match: grpc\n        to: 127.0.0.1:3\n", "unreachable"},
		{base + "      - match: tls\n        to: 127.0.0.1:2\n      - match: tls\n        sni: [a.example]\n        to: 127.0.0.1:3\n", "unreachable"},
		{base + "      - match: websocket\n        path: /a\n        to: 127.0.0.1:2\n      - match: websocket\n        path: /a/b\n        to: 127.0.0.1:3\n", "unreachable"},
		{base + "      - match: telnet\n        to: 127.0.0.1:2\n", `line 4: match "telnet": want one of`},
		{base + "      - match: http1\n", "needs exactly one of to, bridge, serve"},
		{base + "      - match: http1\n        to: 127.0.0.1:2\n        bridge: 127.0.0.1:3\n", "needs exactly one of"},
		{base + "      - match: http1\n        bridge: 127.0.0.1:3\n", "bridge needs match: websocket"},
		{base + "      - match: http1\n        to: nowhere\n", `to "nowhere" is not host:port`},
		{base + "      - match: ssh\n        path: /x\n        to: 127.0.0.1:2\n", "path applies to"},
		{base + "      - match: http1\n        sni: [a]\n        to: 127.0.0.1:2\n", "sni and alpn apply"},
		{base + "      - match: upgrade\n        to: 127.0.0.1:2\n", "needs upgrade tokens"},
		{base + "      - match: http1\n        to: 127.0.0.1:2\n        send_proxy: v3\n", `send_proxy "v3"`},
		{base + "      - match: http1\n        name: a\n        to: 127.0.0.1:2\n      - match: ssh\n        name: a\n        to: 127.0.0.1:2\n", `line 7: route name "a" is also at line 4`},
		{"listeners:\n  - listen: 127.0.0.1:1\n    proxy_protocol: {accept: true}\n    routes: [{match: any, to: 127.0.0.1:2}]\n", "line 2: proxy_protocol.accept needs trusted"},
		{"listeners:\n  - listen: 127.0.0.1:1\n    routes: [{match: any, to: 127.0.0.1:2}]\n  - listen: 127.0.0.1:1\n    routes: [{match: any, to: 127.0.0.1:2}]\n", "line 4: listen 127.0.0.1:1 is also at line 2"},
		{"listeners: []\n", "no listeners"},
		{"listeners:\n  - listen: 127.0.0.1:1\n", "has no routes"},
		{"log: {format: xml}\nlisteners:\n  - listen: 127.0.0.1:1\n    routes: [{match: any, to: 127.0.0.1:2}]\n", `log format "xml"`},
	}
	for _, tt := range tests {
		_, err := ParseConfig([]byte(tt.yaml))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("config\n%s\ngot error %v; want one containing %q", tt.yaml, err, tt.want)
		}
	}
}
