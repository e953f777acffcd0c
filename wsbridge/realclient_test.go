package wsbridge

import (
	"context"
	_ "embed"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
)

//go:embed testdata/page.html
var testPage []byte

// startMuxSite serves, on one 127.0.0.1 port behind a mux: the test page
// over HTTP/1.1, /bridge (a Bridge to a TCP echo backend, compression
// on), /text (the same in text mode) and /echo (the Conn API echoing
// messages, compression on, subprotocol v1.test).
//
// The page posts its report to /result, which the returned channel
// delivers; /wait answers only after that (or after 60 s), so that
// Chromium's load event waits for the report.
func startMuxSite(t testing.TB) (string, <-chan string) {
	t.Helper()
	backend := echoBackend(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	// Cancelling ctx ends the bridges and echoes (close 1001), so that
	// Shutdown need not wait for clients that stay.
	m := &mux.Mux{BaseContext: func(net.Listener) context.Context { return ctx }}
	bin := &Bridge{Backend: backend, Upgrader: Upgrader{Compression: true}}
	text := &Bridge{Backend: backend, Text: true}
	m.Handle("bridge", mux.And(mux.WebSocket(), mux.PathPrefix("/bridge")), bin)
	m.Handle("text", mux.And(mux.WebSocket(), mux.PathPrefix("/text")), text)
	up := &Upgrader{Compression: true, Protocols: []string{"v1.test"}}
	m.HandleFunc("echo", mux.And(mux.WebSocket(), mux.PathPrefix("/echo")), func(ctx context.Context, c net.Conn) error {
		serveEcho(ctx, up, c)
		return nil
	})
	h1 := m.Listen("http1", mux.HTTP1())
	report := make(chan string, 1)
	reported := make(chan struct{})
	var once sync.Once
	site := http.NewServeMux()
	site.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(testPage)
	})
	site.HandleFunc("POST /result", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		once.Do(func() {
			report <- string(b)
			close(reported)
		})
	})
	site.HandleFunc("GET /wait", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-reported:
		case <-ctx.Done():
		case <-time.After(60 * time.Second):
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: site}
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(h1) })
	wg.Go(func() { m.Serve(ln) })
	t.Cleanup(func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.Shutdown(sctx)
		srv.Shutdown(sctx)
		m.Close()
		wg.Wait()
	})
	return ln.Addr().String(), report
}

// serveEcho echoes messages with the Conn API until the client closes or
// ctx ends.
func serveEcho(ctx context.Context, u *Upgrader, c net.Conn) {
	wc, err := u.Upgrade(c)
	if err != nil {
		return
	}
	defer wc.Close()
	stop := context.AfterFunc(ctx, func() { wc.CloseWith(CloseGoingAway, "test over") })
	defer stop()
	var buf []byte
	for {
		var op MessageType
		op, buf, err = wc.ReadMessage(buf)
		if err != nil {
			return
		}
		if wc.WriteMessage(op, buf) != nil {
			return
		}
	}
}

// TestChromium loads the page in headless Chromium: it arrives over
// HTTP/1.1 through the mux, opens three WebSockets through the same port,
// and reports whether every byte came back.
func TestChromium(t *testing.T) {
	testtool.Need(t, "chromium")
	addr, report := startMuxSite(t)
	out := testtool.ChromiumDOM(t, "http://"+addr+"/")
	var got string
	select {
	case got = <-report:
	default:
		t.Fatalf("the page posted no report; its DOM:\n%s", out)
	}
	const deflate = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
	// The byte counts are of what was sent: 256 + 200000 + the text's
	// UTF-8 (12016) + 1 + 0, and so on.
	want := "/bridge: ok 212273 bytes as binary ext=" + deflate + "\n" +
		"/text: ok 12037 bytes as text ext=none\n" +
		"/echo: ok 5 messages protocol=v1.test ext=" + deflate + "\n" +
		"done"
	if got != want {
		t.Errorf("page reports:\n%s\nwant:\n%s", got, want)
	}
}

// nodeClient returns node and the directory holding npm ws, installed by
// .ci/run with npm ci; outside CI a missing one skips the test.
func nodeClient(t *testing.T) (node, dir string) {
	node = testtool.Need(t, "node")
	dir, _ = filepath.Abs("testdata/node")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "ws")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("npm ws is not installed in testdata/node; .ci/run installs it with npm ci")
		}
		t.Skip("npm ws is not installed in testdata/node (run npm ci there); CI unset, so skipping")
	}
	return node, dir
}

// TestNodeWS drives the routes with npm ws, with and without
// permessage-deflate.
func TestNodeWS(t *testing.T) {
	node, dir := nodeClient(t)
	addr, _ := startMuxSite(t)
	for _, deflate := range []string{"off", "on"} {
		t.Run("deflate "+deflate, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "client.js"), "ws://"+addr, deflate)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			var ee *exec.ExitError
			if err != nil && !errors.As(err, &ee) {
				t.Fatal(err)
			}
			got := string(out)
			ext := "none"
			if deflate == "on" {
				ext = "permessage-deflate"
			}
			for _, want := range []string{
				"/bridge ok ext=" + ext,
				"/text ok ext=none",
				"/echo ok protocol=v1.test ext=" + ext,
				"/echo close 1000",
				"/bridge bad frame close 1009",
			} {
				if !strings.Contains(got, want) {
					t.Errorf("node client reports no %q:\n%s", want, got)
				}
			}
			if err != nil {
				t.Errorf("node client: %v\n%s", err, got)
			}
		})
	}
}
