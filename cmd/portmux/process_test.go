package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// portmuxBinary builds the portmux command once for the tests that run it as a
// process: signals and socket activation.
func portmuxBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "portmux-test")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "portmux")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			binPath = string(out)
		}
	})
	if binErr != nil {
		t.Fatalf("go build: %v\n%s", binErr, binPath)
	}
	return binPath
}

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "portmux.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckFlag(t *testing.T) {
	bin := portmuxBinary(t)
	good := writeConfig(t, "listeners:\n  - listen: 127.0.0.1:9\n    routes: [{match: any, to: 127.0.0.1:10}]\n")
	out, err := exec.Command(bin, "-check", "-config", good).CombinedOutput()
	if err != nil || string(out) != "portmux: configuration OK: 1 listener, 1 route\n" {
		t.Errorf("-check on a good file: %q %v", out, err)
	}
	bad := writeConfig(t, "listeners:\n  - listen: 127.0.0.1:9\n    routes:\n      - match: any\n        to: 127.0.0.1:10\n      - match: ssh\n        to: 127.0.0.1:11\n")
	out, err = exec.Command(bin, "-check", "-config", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `line 6: route "ssh-2" is unreachable`) {
		t.Errorf("-check on a bad file: %q %v", out, err)
	}
	if out, err := exec.Command(bin, "-check").CombinedOutput(); err != nil || !strings.Contains(string(out), "2 listeners, 4 routes") {
		t.Errorf("-check on the default configuration: %q %v", out, err)
	}
}

// startProcess runs the binary with args and waits for its "listening"
// line; it is killed when the test ends if still running.
func startProcess(t *testing.T, cmd *exec.Cmd) *exec.Cmd {
	t.Helper()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "listening on") {
		t.Fatalf("portmux did not start: %q %v", line, err)
	}
	go io.Copy(io.Discard, stdout)
	return cmd
}

// TestSignalsUnderLoad: SIGHUP reloads the file while clients keep
// connecting, with no failed request; SIGTERM lets the requests in flight
// (each takes 500 ms at the backend) finish, then the process exits 0.
func TestSignalsUnderLoad(t *testing.T) {
	bin := portmuxBinary(t)
	a, b := webBackend(t, "A"), webBackend(t, "B")
	port := testtool.FreePort(t)
	conf := func(to string) string {
		return "grace: 5s\nlisteners:\n  - listen: 127.0.0.1:" + port + "\n    routes: [{match: http1, to: " + to + "}]\n"
	}
	path := writeConfig(t, conf(a))
	cmd := startProcess(t, exec.Command(bin, "-config", path))
	url := "http://127.0.0.1:" + port

	var failures, total atomic.Int64
	var sawB atomic.Bool
	var firstErr atomic.Value
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(url + "/")
				total.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.HasPrefix(string(body), "B ") {
					sawB.Store(true)
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	os.WriteFile(path, []byte(conf(b)), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(5 * time.Second)
	for !sawB.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	close(stop)
	wg.Wait()
	if !sawB.Load() || failures.Load() != 0 {
		t.Errorf("SIGHUP under load: switched %v, %d of %d failed (first: %v)", sawB.Load(), failures.Load(), total.Load(), firstErr.Load())
	}

	// SIGTERM with slow requests in flight: they complete.
	results := make(chan string, 4)
	for range 4 {
		go func() {
			c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
			resp, err := c.Get(url + "/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(body)
		}()
	}
	time.Sleep(200 * time.Millisecond) // the requests are at the backend
	cmd.Process.Signal(syscall.SIGTERM)
	for range 4 {
		if got := <-results; !strings.HasPrefix(got, "B HTTP/1.1 /slow") {
			t.Errorf("request in flight at SIGTERM: %q", got)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit after SIGTERM: %v", err)
	}
	if _, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second); err == nil {
		t.Errorf("still accepting after SIGTERM")
	}
}

// TestSocketActivation: systemd-socket-activate passes the listening
// socket (LISTEN_FDS); portmux serves on it instead of binding.
func TestSocketActivation(t *testing.T) {
	bin := portmuxBinary(t)
	activate := testtool.Need(t, "systemd-socket-activate")
	web := webBackend(t, "web")
	port := testtool.FreePort(t)
	path := writeConfig(t, "listeners:\n  - listen: 127.0.0.1:"+port+"\n    routes: [{match: http1, to: "+web+"}]\n")
	cmd := exec.Command(activate, "-l", "127.0.0.1:"+port, bin, "-config", path)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// systemd-socket-activate listens first and starts portmux on the
	// first connection; the request must be served by it.
	br := bufio.NewReader(stderr)
	if line, err := br.ReadString('\n'); err != nil || !strings.Contains(line, "Listening on") {
		t.Fatalf("systemd-socket-activate: %q %v", line, err)
	}
	go io.Copy(io.Discard, br)
	if got := testtool.Curl(t, "http://127.0.0.1:"+port+"/sa"); got != "web HTTP/1.1 /sa proxied=no" {
		t.Errorf("through the activated socket: %q", got)
	}
	cmd.Process.Signal(syscall.SIGTERM)
}

// TestReusePort: two processes with reuse_port serve the same port.
func TestReusePort(t *testing.T) {
	bin := portmuxBinary(t)
	web := webBackend(t, "web")
	port := testtool.FreePort(t)
	path := writeConfig(t, "listeners:\n  - listen: 127.0.0.1:"+port+"\n    reuse_port: true\n    routes: [{match: http1, to: "+web+"}]\n")
	startProcess(t, exec.Command(bin, "-config", path))
	startProcess(t, exec.Command(bin, "-config", path))
	for range 4 {
		if got := testtool.Curl(t, "http://127.0.0.1:"+port+"/r"); got != "web HTTP/1.1 /r proxied=no" {
			t.Errorf("got %q", got)
		}
	}
}

// webBackend is an HTTP/1.1 server that answers "<name> <proto> <path>
// proxied=no", after 500 ms for /slow.
func webBackend(t *testing.T, name string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(500 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s %s %s proxied=no", name, r.Proto, r.URL.Path)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
