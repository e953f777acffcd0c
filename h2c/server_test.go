package h2c

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
	"github.com/portmux/portmux/mux"
	"go.uber.org/goleak"
	"golang.org/x/net/http2"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// report answers with what the handler saw: protocol, method, path, body
// length and digest, so each test can tell which way a request came.
func report(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	sum := sha256.Sum256(body)
	fmt.Fprintf(w, "%s %s %s %d %s x=%s", r.Proto, r.Method, r.URL.RequestURI(), len(body), hex.EncodeToString(sum[:4]), r.Header.Get("X-Test"))
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:4])
}

// serve starts a mux on 127.0.0.1:0 with routes for prior-knowledge h2c,
// h2c upgrades and HTTP/1.1, all served by srv; upgradeOnly makes the
// port take only h2c upgrades (and prior knowledge).
func serve(t testing.TB, srv *Server, upgradeOnly bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	lns := []net.Listener{m.Listen("h2c", mux.HTTP2()), m.Listen("upgrade", mux.Upgrade("h2c"))}
	if upgradeOnly {
		m.UpgradeOnly = []string{"h2c"}
	} else {
		lns = append(lns, m.Listen("http1", mux.HTTP1()))
	}
	var wg sync.WaitGroup
	for _, l := range lns {
		wg.Go(func() { srv.Serve(l) })
	}
	wg.Go(func() { m.Serve(ln) })
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		m.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

func newServer(upgrade bool) *Server {
	return &Server{
		HTTP:         &http.Server{Handler: http.HandlerFunc(report), ReadHeaderTimeout: 5 * time.Second},
		AllowUpgrade: upgrade,
	}
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

func get(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOneHandlerBothProtocols(t *testing.T) {
	addr := serve(t, newServer(false), false)
	h2 := h2cClient()
	defer h2.CloseIdleConnections()
	if got, want := get(t, h2, "http://"+addr+"/a?b=c"), "HTTP/2.0 GET /a?b=c 0"; !strings.HasPrefix(got, want) {
		t.Errorf("prior knowledge: got %q; want prefix %q", got, want)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	if got, want := get(t, c, "http://"+addr+"/a"), "HTTP/1.1 GET /a 0"; !strings.HasPrefix(got, want) {
		t.Errorf("HTTP/1.1: got %q; want prefix %q", got, want)
	}
}

// TestServerSettingsShared: the http.Server's HTTP2 settings reach
// connections of both kinds, prior knowledge and upgraded.
func TestServerSettingsShared(t *testing.T) {
	srv := newServer(true)
	srv.HTTP.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 7, MaxReadFrameSize: 1 << 15}
	addr := serve(t, srv, false)
	for _, upgrade := range []bool{false, true} {
		c := dialH2(t, addr, upgrade, nil)
		got := c.serverSettings(t)
		if got[http2.SettingMaxConcurrentStreams] != 7 || got[http2.SettingMaxFrameSize] != 1<<15 {
			t.Errorf("upgrade=%v: server settings %v; want max streams 7, frame size 32768", upgrade, got)
		}
		c.Close()
	}
}

func TestCurl(t *testing.T) {
	addr := serve(t, newServer(true), false)
	url := "http://" + addr
	body := strings.Repeat("0123456789", 1000)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"prior knowledge GET", []string{"--http2-prior-knowledge", url + "/pk"}, "HTTP/2.0 GET /pk 0"},
		{"prior knowledge POST", []string{"--http2-prior-knowledge", "-d", body, url + "/pk"}, "HTTP/2.0 POST /pk 10000 " + digest([]byte(body))},
		{"upgrade GET", []string{"--http2", "-H", "X-Test: kept", url + "/up?q=1"}, "HTTP/2.0 GET /up?q=1 0 e3b0c442 x=kept"},
		{"upgrade POST", []string{"--http2", "-d", body, url + "/up"}, "HTTP/2.0 POST /up 10000 " + digest([]byte(body))},
		{"upgrade HEAD", []string{"--http2", "-I", url + "/up"}, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\nHTTP/2 200 \r\n"},
		{"HTTP/1.1", []string{"--http1.1", url + "/h1"}, "HTTP/1.1 GET /h1 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := testtool.Curl(t, tt.args...); !strings.HasPrefix(got, tt.want) {
				t.Errorf("got %q; want prefix %q", got, tt.want)
			}
		})
	}
	// The 101 really happened: curl's verbose log shows it.
	if got := testtool.Curl(t, "-v", "--http2", url+"/v"); !strings.Contains(got, "< HTTP/1.1 101 Switching Protocols") || !strings.Contains(got, "< HTTP/2 200") {
		t.Errorf("curl -v --http2: no 101 then HTTP/2 200 in\n%s", got)
	}
}

func TestNghttp(t *testing.T) {
	nghttp := testtool.Need(t, "nghttp")
	addr := serve(t, newServer(true), false)
	for _, args := range [][]string{{"http://" + addr + "/n"}, {"-u", "http://" + addr + "/n"}, {"-u", "-d", "/dev/null", "http://" + addr + "/n"}} {
		out, err := exec.Command(nghttp, append([]string{"-t", "10", "-v"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("nghttp %v: %v\n%s", args, err, out)
		}
		if !strings.Contains(string(out), ":status: 200") || !strings.Contains(string(out), "HTTP/2.0 ") {
			t.Errorf("nghttp %v:\n%s", args, out)
		}
		if args[0] == "-u" && !strings.Contains(string(out), "HTTP Upgrade response") {
			t.Errorf("nghttp %v did not upgrade:\n%s", args, out)
		}
	}
}

func TestH2load(t *testing.T) {
	h2load := testtool.Need(t, "h2load")
	addr := serve(t, newServer(false), false)
	out, err := exec.Command(h2load, "-n", "2000", "-c", "4", "-m", "10", "-T", "10", "http://"+addr+"/load").CombinedOutput()
	if err != nil {
		t.Fatalf("h2load: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "2000 succeeded, 0 failed, 0 errored") {
		t.Errorf("h2load:\n%s", out)
	}
}

// TestShutdownCompletesStreams: Shutdown sends GOAWAY and waits for the
// streams in flight, on prior-knowledge and upgraded connections alike.
func TestShutdownCompletesStreams(t *testing.T) {
	entered := make(chan struct{}, 16)
	release := make(chan struct{})
	srv := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-release
		io.WriteString(w, "done "+r.Proto)
	})}, AllowUpgrade: true}
	shutStarted := make(chan struct{})
	srv.HTTP.RegisterOnShutdown(func() { close(shutStarted) })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := new(mux.Mux)
	h2, h1 := m.Listen("h2c", mux.HTTP2()), m.Listen("http1", mux.HTTP1())
	var wg sync.WaitGroup
	wg.Go(func() { srv.Serve(h2) })
	wg.Go(func() { srv.Serve(h1) })
	wg.Go(func() { m.Serve(ln) })
	defer func() { m.Close(); wg.Wait() }()
	url := "http://" + ln.Addr().String() + "/"

	client := h2cClient()
	results := make(chan string, 4)
	for range 3 {
		go func() {
			resp, err := client.Get(url)
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	// And one upgraded connection.
	go func() {
		out, err := exec.Command(testtool.Need(t, "curl"), "-sS", "--max-time", "10", "--http2", url).CombinedOutput()
		if err != nil {
			results <- fmt.Sprintf("curl: %v %s", err, out)
			return
		}
		results <- string(out)
	}()
	for range 4 {
		<-entered
	}
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- srv.Shutdown(ctx)
	}()
	<-shutStarted
	close(release)
	for range 4 {
		if got := <-results; got != "done HTTP/2.0" {
			t.Errorf("request in flight got %q; want done HTTP/2.0", got)
		}
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	client.CloseIdleConnections()
}
