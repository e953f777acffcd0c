package daemon

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
)

const routesConfig = `

listeners:
  - listen: 127.0.0.1:0
    sniff_timeout: 300ms
    proxy_protocol: { accept: true, trusted: [127.0.0.0/8] }
    routes:
      - match: http2
        to: {{web}}
      - match: upgrade
        upgrade: [h2c]
        to: {{web}}
        name: h2c-upgrade
      - match: http1
        path: /proxied
        to: {{web}}
        send_proxy: v2
      - match: http1
        to: {{web}}
      - match: tls
        sni: ["*.example.com"]
        to: {{tls}}
      - match: ssh
        to: {{ssh}}
      - match: any
        to: {{any}}
    on_timeout: {{smtp}}
  - listen: 127.0.0.1:0
    upgrade_only: [websocket]
    routes:
      - match: websocket
        to: {{web}}
`

// TestDaemonRoutes drives every kind of route with real clients.
func TestDaemonRoutes(t *testing.T) {
	web := httpBackend(t, "web")
	addrs, _ := startDaemon(t, routesConfig, map[string]string{
		"web": web, "tls": tlsBackend(t), "ssh": tcpBackend(t, "ssh", "SSH-2.0-backend"),
		"any": tcpBackend(t, "any", ""), "smtp": tcpBackend(t, "smtp", "220 smtp ready"),
	})
	addr, upAddr := addrs[0], addrs[1]
	url := "http://" + addr

	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"HTTP/1.1", []string{url + "/a"}, "web HTTP/1.1 /a proxied=no"},
		{"h2c prior knowledge", []string{"--http2-prior-knowledge", url + "/b"}, "web HTTP/2.0 /b proxied=no"},
		{"h2c upgrade passed through", []string{"--http2", url + "/c"}, "web HTTP/2.0 /c proxied=no"},
		{"PROXY v2 out", []string{url + "/proxied"}, "web HTTP/1.1 /proxied proxied=127.0.0.1:"},
		{"PROXY v1 in, v2 out", []string{"--haproxy-protocol", url + "/proxied"}, "web HTTP/1.1 /proxied proxied=127.0.0.1:"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := testtool.Curl(t, tt.args...); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q; want prefix %q", got, tt.want)
			}
		})
	}
	// The proxied address is curl's own, not portmux's.
	got := testtool.Curl(t, "-v", url+"/proxied")
	if i := strings.Index(got, "Connected to 127.0.0.1 (127.0.0.1) port "); i < 0 || !strings.Contains(got, "proxied=127.0.0.1:") {
		t.Errorf("curl -v: %q", got)
	}

	if out, err := exec.Command(testtool.Need(t, "nghttp"), "-t", "10", url+"/n").CombinedOutput(); err != nil || string(out) != "web HTTP/2.0 /n proxied=no" {
		t.Errorf("nghttp: %q %v", out, err)
	}
	if got := testtool.Curl(t, "-i", "http://"+upAddr+"/"); !strings.Contains(got, "426 Upgrade Required") || !strings.Contains(got, "Upgrade: websocket") {
		t.Errorf("upgrade-only port: %q", got)
	}

	// TLS by SNI, with openssl as the client.
	cmd := exec.Command(testtool.Need(t, "openssl"), "s_client", "-connect", addr, "-servername", "a.example.com", "-quiet", "-verify_quiet")
	cmd.Stdin = strings.NewReader("")
	if out, _ := cmd.CombinedOutput(); !strings.Contains(string(out), "tls a.example.com") {
		t.Errorf("openssl s_client: %q", out)
	}

	exchange := func(first, want string) {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if first != "" {
			io.WriteString(c, first)
		}
		br := bufio.NewReader(c)
		var lines []string
		for len(strings.Join(lines, "")) < len(want) {
			line, err := br.ReadString('\n')
			lines = append(lines, line)
			if err != nil {
				break
			}
		}
		if got := strings.Join(lines, ""); got != want {
			t.Errorf("after %q: got %q; want %q", first, got, want)
		}
	}
	exchange("SSH-2.0-OpenSSH_9.2\r\n", "SSH-2.0-backend\r\nssh: SSH-2.0-OpenSSH_9.2\n")
	exchange("hello\n", "any: hello\n")
	exchange("", "220 smtp ready\r\n") // silent: on_timeout
}

// TestAnyAndProxyIn: with proxy_protocol, match: any waits for the first
// bytes, so a trusted PROXY header is stripped, not passed on.
func TestAnyAndProxyIn(t *testing.T) {
	be := tcpBackend(t, "b", "")
	addrs, _ := startDaemon(t, `listeners:
  - listen: 127.0.0.1:0
    proxy_protocol: { accept: true, trusted: [127.0.0.1/32] }
    routes:
      - match: any
        to: {{b}}
`, map[string]string{"b": be})
	c, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(50 * time.Millisecond) // a proxy that connects, then writes
	io.WriteString(c, "PROXY TCP4 1.2.3.4 5.6.7.8 1111 2222\r\nhello\n")
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	if strings.Contains(line, "PROXY") {
		t.Errorf("backend got the PROXY header: %q", line)
	}
}

// TestRouteCountsSurviveAPanic: a Handler that panics (the mux recovers)
// gives back the route's slot and its gauge.
func TestRouteCountsSurviveAPanic(t *testing.T) {
	d := New(nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	r := &route{listener: "l", name: "r", sniffs: d.met.sniffTimes("l"), active: d.met.active("l", "r"),
		outcomes: d.met.outcomes("l", "r"), limit: d.routeLimit("l\x00r", 1),
		h: mux.HandlerFunc(func(ctx context.Context, c net.Conn) error { panic("boom") })}
	var m mux.Mux
	m.Handle("r", mux.Any(), r)
	ln := listen(t)
	go m.Serve(ln)
	defer m.Close()
	for range 2 { // the second would be refused (route_limit) were the slot lost
		c := testtool.Dial(t, ln.Addr().String(), "")
		io.ReadAll(c) // closed by the mux's recover
		c.Close()
	}
	waitFor := func(cond func() bool) {
		for range 500 {
			if cond() {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitFor(func() bool { return r.outcomes[outcomeError].Get() == 2 })
	if r.limit.used != 0 || r.active.Get() != 0 || r.outcomes[outcomeError].Get() != 2 || r.outcomes[outcomeRouteLimit].Get() != 0 {
		t.Errorf("after two panics: route slots used %d, active %v, errors %d, route_limit %d; want 0, 0, 2, 0",
			r.limit.used, r.active.Get(), r.outcomes[outcomeError].Get(), r.outcomes[outcomeRouteLimit].Get())
	}
}
