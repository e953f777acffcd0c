package daemon

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
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

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
	m := &mux.Mux{Config: mux.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	srv := &h2c.Server{AllowUpgrade: true, HTTP: &http.Server{
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
	wg.Go(func() { m.Serve(ln) })
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

// startDaemon serves the configuration text (with {{name}} placeholders
// replaced) and returns the bound addresses and a reload that takes a
// new configuration text. The daemon is shut down, within 5 s, when the
// test ends.
func startDaemon(t testing.TB, text string, vars map[string]string) (addrs []string, reload func(string)) {
	t.Helper()
	parse := func(text string) (*Config, error) {
		for k, v := range vars {
			text = strings.ReplaceAll(text, "{{"+k+"}}", v)
		}
		return ParseConfig([]byte(text))
	}
	cfg, err := parse(text)
	if err != nil {
		t.Fatal(err)
	}
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return d.Addrs(), func(text string) {
		d.Reload(func() (*Config, error) { return parse(text) }) // a bad text leaves the running configuration
	}
}

// dialGreet connects, sends a line (so that match: any takes it) and
// returns the backend's greeting, if it comes within wait.
func dialGreet(t *testing.T, addr string, wait time.Duration) (net.Conn, string) {
	c := testtool.Dial(t, addr, "x\n")
	c.SetReadDeadline(time.Now().Add(wait))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return c, line
}
