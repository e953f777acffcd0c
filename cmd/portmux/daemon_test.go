package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
)

// listen returns a listener on 127.0.0.1:0 closed when the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

type connKey struct{}

// httpBackend serves HTTP/1.1, h2c (prior knowledge and upgrade) behind a
// mux that trusts PROXY headers from loopback. It answers
// "<name> <proto> <path> proxied=<client address or no>".
func httpBackend(t *testing.T, name string) string {
	t.Helper()
	ln := listen(t)
	m := mux.New(ln)
	m.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	srv := &h2c.Server{AllowUpgrade: true, Server: &http.Server{
		ReadHeaderTimeout: 5 * time.Second,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				time.Sleep(500 * time.Millisecond)
			}
			proxied := "no"
			if c, ok := r.Context().Value(connKey{}).(*mux.Conn); ok && c.Proxied() {
				proxied = c.RemoteAddr().String()
			}
			fmt.Fprintf(w, "%s %s %s proxied=%s", name, r.Proto, r.URL.Path, proxied)
		}),
	}}
	h2, h1 := m.Listen("h2", mux.HTTP2()), m.Listen("h1", mux.HTTP1())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(h2) })
	wg.Go(func() { srv.Serve(h1) })
	wg.Go(func() { m.Serve() })
	t.Cleanup(func() { srv.Close(); m.Close(); wg.Wait() })
	return ln.Addr().String()
}

// tcpBackend greets first if greet is set, then answers each line it
// reads with "<name>: <line>".
func tcpBackend(t *testing.T, name, greet string) string {
	t.Helper()
	ln := listen(t)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if greet != "" {
					io.WriteString(c, greet+"\r\n")
				}
				sc := bufio.NewScanner(c)
				for sc.Scan() {
					fmt.Fprintf(c, "%s: %s\n", name, sc.Text())
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// tlsBackend answers "tls <SNI>" on a TLS connection.
func tlsBackend(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "*.example.com"}, DNSNames: []string{"*.example.com"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ln := tls.NewListener(listen(t), &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := c.(*tls.Conn)
				if tc.Handshake() == nil {
					fmt.Fprintf(tc, "tls %s\n", tc.ConnectionState().ServerName)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// startDaemon runs run() on the configuration text (with {{name}}
// placeholders replaced) and returns the bound addresses and a reload
// trigger that takes a new configuration text.
func startDaemon(t testing.TB, text string, vars map[string]string) (addrs []string, reload func(string)) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "portmux.yaml")
	write := func(text string) {
		for k, v := range vars {
			text = strings.ReplaceAll(text, "{{"+k+"}}", v)
		}
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(text)
	o := options{configPath: path, grace: 5 * time.Second}
	cfg, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	reloads := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- run(ctx, o, cfg, io.Discard, ready, reloads) }()
	select {
	case addrs = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return addrs, func(text string) {
		write(text)
		reloads <- struct{}{}
		reloads <- struct{}{} // the second send returns once the first is applied
	}
}

func curl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(testtool.Need(t, "curl"), append([]string{"-sS", "--max-time", "10"}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

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
			if got := curl(t, tt.args...); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q; want prefix %q", got, tt.want)
			}
		})
	}
	// The proxied address is curl's own, not portmux's.
	got := curl(t, "-v", url+"/proxied")
	if i := strings.Index(got, "Connected to 127.0.0.1 (127.0.0.1) port "); i < 0 || !strings.Contains(got, "proxied=127.0.0.1:") {
		t.Errorf("curl -v: %q", got)
	}

	if out, err := exec.Command(testtool.Need(t, "nghttp"), "-t", "10", url+"/n").CombinedOutput(); err != nil || string(out) != "web HTTP/2.0 /n proxied=no" {
		t.Errorf("nghttp: %q %v", out, err)
	}
	if got := curl(t, "-i", "http://"+upAddr+"/"); !strings.Contains(got, "426 Upgrade Required") || !strings.Contains(got, "Upgrade: websocket") {
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

// TestDaemonMetrics: outcomes, rejections, sniff latency and bytes show
// at /metrics; /healthz is ready.
func TestDaemonMetrics(t *testing.T) {
	web := httpBackend(t, "web")
	metricsAddr := "127.0.0.1:" + freePort(t)
	addrs, _ := startDaemon(t, `
metrics: {{metrics}}
listeners:
  - listen: 127.0.0.1:0
    name: front
    upgrade_only: [h2c]
    routes:
      - match: http2
        to: {{web}}
        name: h2
  - listen: 127.0.0.1:0
    name: back
    routes:
      - match: http1
        to: 127.0.0.1:1
        name: dead
`, map[string]string{"web": web, "metrics": metricsAddr})
	curl(t, "--http2-prior-knowledge", "http://"+addrs[0]+"/")
	curl(t, "-o", "/dev/null", "http://"+addrs[0]+"/") // 426
	exec.Command("curl", "-sS", "--max-time", "5", "http://"+addrs[1]+"/").Run()
	got := curl(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`portmux_connections_total{listener="front",route="h2",outcome="ok"} 1`,
		`portmux_connections_total{listener="front",route="",outcome="upgrade_required"} 1`,
		`portmux_connections_total{listener="back",route="dead",outcome="dial_error"} 1`,
		`portmux_sniff_seconds_bucket{listener="front",le="+Inf"} 1`,
		`portmux_bytes_total{listener="front",route="h2",direction="up"}`,
		`portmux_active_connections{listener="front",route="h2"} 0`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("no %s in /metrics:\n%s", want, got)
		}
	}
	if got := curl(t, "http://"+metricsAddr+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz: %q", got)
	}
}

// TestDaemonReloadUnderLoad: while clients keep opening connections,
// reloads change routes, change a listener's own settings (a new mux on
// the same socket) and add a listener; no request fails, and each change
// shows at once.
func TestDaemonReloadUnderLoad(t *testing.T) {
	a, b := httpBackend(t, "A"), httpBackend(t, "B")
	const base = `
listeners:
  - listen: 127.0.0.1:{{port}}
    sniff_timeout: {{timeout}}
    routes:
      - match: http1
        to: {{to}}
`
	port := freePort(t)
	vars := map[string]string{"A": a, "B": b, "port": port}
	cfg := func(to, timeout string, extra string) string {
		s := strings.NewReplacer("{{to}}", to, "{{timeout}}", timeout).Replace(base)
		return s + extra
	}
	addrs, reload := startDaemon(t, cfg(a, "3s", ""), vars)
	url := "http://" + addrs[0] + "/"

	var failures, total atomic.Int64
	var last atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			tr := &http.Transport{DisableKeepAlives: true}
			c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url)
				total.Add(1)
				if err != nil {
					failures.Add(1)
					last.Store(err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				last.Store(string(body))
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	reload(cfg(b, "3s", "")) // routes only
	waitBody := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			if s, _ := last.Load().(string); strings.HasPrefix(s, want) {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("after reload, still %v; want %q", last.Load(), want)
	}
	waitBody("B ")
	time.Sleep(200 * time.Millisecond)
	reload(cfg(a, "2s", "")) // the listener's own settings: a new mux
	waitBody("A ")
	time.Sleep(200 * time.Millisecond)
	reload(cfg(a, "2s", "  - listen: 127.0.0.1:0\n    routes: [{match: any, to: "+b+"}]\n")) // a new listener
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if failures.Load() != 0 || total.Load() < 20 {
		t.Errorf("%d of %d requests failed across reloads (last: %v)", failures.Load(), total.Load(), last.Load())
	}
	// A bad configuration leaves the running one in place.
	reload("listeners: [}")
	if got := curl(t, url); !strings.HasPrefix(got, "A ") {
		t.Errorf("after a bad reload: %q", got)
	}
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// TestHAProxyInFront: HAProxy sends PROXY v2 to portmux, which trusts it
// and passes the client's address on to the backend in a PROXY v2 header
// of its own.
func TestHAProxyInFront(t *testing.T) {
	testtool.Need(t, "haproxy")
	web := httpBackend(t, "web")
	addrs, _ := startDaemon(t, `
listeners:
  - listen: 127.0.0.1:0
    proxy_protocol: { accept: true, trusted: [127.0.0.1] }
    routes:
      - match: http1
        to: {{web}}
        send_proxy: v2
`, map[string]string{"web": web})
	front := testtool.HAProxy(t, addrs[0])
	c, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET /ha HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if want := "web HTTP/1.1 /ha proxied=" + c.LocalAddr().String(); string(body) != want {
		t.Errorf("got %q; want %q", body, want)
	}
}

// TestDaemonBridge: a WebSocket route bridged to a TCP backend, beside a
// WebSocket route passed through untouched.
func TestDaemonBridge(t *testing.T) {
	addrs, _ := startDaemon(t, `
listeners:
  - listen: 127.0.0.1:0
    routes:
      - match: websocket
        path: /vnc
        bridge: {{line}}
      - match: websocket
        serve: echo
`, map[string]string{"line": tcpBackend(t, "line", "")})
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+addrs[0]+"/vnc")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if err := wsutil.WriteClientBinary(conn, []byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	msg, op, err := wsutil.ReadServerData(conn)
	if err != nil || op != ws.OpBinary || string(msg) != "line: hello\n" {
		t.Errorf("bridge: %q %v %v", msg, op, err)
	}
	echo, _, _, err := ws.Dial(context.Background(), "ws://"+addrs[0]+"/other")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	echo.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientText(echo, []byte("hi"))
	if msg, _, err := wsutil.ReadServerData(echo); err != nil || string(msg) != "hi" {
		t.Errorf("echo: %q %v", msg, err)
	}
}

// TestDaemonLiveBytes: a connection's bytes reach /metrics while it is
// still open, not only when it ends.
func TestDaemonLiveBytes(t *testing.T) {
	echo := tcpBackend(t, "echo", "")
	metricsAddr := "127.0.0.1:" + freePort(t)
	addrs, _ := startDaemon(t, `
metrics: {{metrics}}
listeners:
  - listen: 127.0.0.1:0
    name: front
    routes:
      - match: http1
        serve: page
        name: site
      - match: any
        to: {{echo}}
        name: raw
`, map[string]string{"echo": echo, "metrics": metricsAddr})
	c, err := net.Dial("tcp", addrs[0])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	for _, line := range []string{"first", "second"} {
		fmt.Fprintf(c, "%s\n", line)
		if got, err := r.ReadString('\n'); err != nil || got != "echo: "+line+"\n" {
			t.Fatalf("echo of %q: %q, %v", line, got, err)
		}
	}
	got := curl(t, "http://"+metricsAddr+"/metrics")
	for _, want := range []string{
		`portmux_bytes_total{listener="front",route="raw",direction="up"} 13`,   // "first\nsecond\n"
		`portmux_bytes_total{listener="front",route="raw",direction="down"} 25`, // with "echo: " twice
		`portmux_active_connections{listener="front",route="raw"} 1`,
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("no %s in /metrics with the connection open:\n%s", want, got)
		}
	}
	if strings.Contains(got, `portmux_bytes_total{listener="front",route="site"`) {
		t.Errorf("byte counts for a route that counts no bytes (serve: page):\n%s", got)
	}
}
