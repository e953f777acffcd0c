package daemon

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// TestDaemonMetrics: outcomes, rejections, sniff latency and bytes show
// at /metrics; /healthz is ready.
func TestDaemonMetrics(t *testing.T) {
	web := httpBackend(t, "web")
	metricsAddr := "127.0.0.1:" + testtool.FreePort(t)
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
	testtool.Curl(t, "--http2-prior-knowledge", "http://"+addrs[0]+"/")
	testtool.Curl(t, "-o", "/dev/null", "http://"+addrs[0]+"/") // 426
	exec.Command("curl", "-sS", "--max-time", "5", "http://"+addrs[1]+"/").Run()
	got := testtool.Curl(t, "http://"+metricsAddr+"/metrics")
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
	if got := testtool.Curl(t, "http://"+metricsAddr+"/healthz"); got != "ok\n" {
		t.Errorf("/healthz: %q", got)
	}
}

// TestDaemonLiveBytes: a connection's bytes reach /metrics while it is
// still open, not only when it ends.
func TestDaemonLiveBytes(t *testing.T) {
	echo := tcpBackend(t, "echo", "")
	metricsAddr := "127.0.0.1:" + testtool.FreePort(t)
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
	got := testtool.Curl(t, "http://"+metricsAddr+"/metrics")
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
