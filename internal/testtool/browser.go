package testtool

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ChromiumDOM loads url in headless Chromium (from Debian's chromium
// package; skipped outside CI when absent), lets the page run for up to
// ten seconds of virtual time, and returns its DOM then.
func ChromiumDOM(t testing.TB, url string) string {
	t.Helper()
	chromium := Need(t, "chromium")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-quic", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=10000", "--dump-dom", url).Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	return string(out)
}

// HAProxy runs haproxy in TCP mode: a frontend on 127.0.0.1 (its address
// is returned) that sends every connection to backend with a PROXY v2
// header. It is stopped when the test ends.
func HAProxy(t testing.TB, backend string) (front string) {
	t.Helper()
	haproxy := Need(t, "haproxy")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	front = l.Addr().String()
	l.Close()
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`global
	log stderr format raw local0 emerg
defaults
	mode tcp
	timeout connect 5s
	timeout client 10s
	timeout server 10s
frontend f
	bind %s
	default_backend b
backend b
	server s %s send-proxy-v2
`, front, backend)), 0o600)
	cmd := exec.Command(haproxy, "-db", "-f", cfg)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 200 {
		if c, err := net.Dial("tcp", front); err == nil {
			c.Close()
			return front
		}
		time.Sleep(25 * time.Millisecond)
	}
	t.Fatalf("haproxy did not listen on %s", front)
	return ""
}
