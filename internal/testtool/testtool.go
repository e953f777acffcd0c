// Package testtool holds what the tests of several packages share: the
// dial-write-read helpers (Dial, Exchange, ExchangeHTTP), net.Pipe
// listeners, a headless browser, and Need, which finds the external
// programs that tests drive (curl, haproxy, chromium, ...). Without one a
// test is skipped, unless the CI environment variable is set: there a
// missing tool is a failure, since .ci/run installs every tool the tests
// need.
package testtool

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// Need returns the path of program name, or skips (outside CI) or fails
// (under CI) the test.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it", name)
		}
		t.Skipf("%s is not installed (CI unset, so skipping)", name)
	}
	return p
}

// patience bounds every wait of the helpers below: long enough for a
// loaded machine, short enough that a hang fails the test.
const patience = 10 * time.Second

// Dial connects to addr, sets a deadline on the connection for the
// test's patience, and writes first (if not empty). The connection is
// closed when the test ends.
func Dial(t testing.TB, addr, first string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(patience))
	if first != "" {
		if _, err := io.WriteString(c, first); err != nil {
			t.Fatalf("writing %q to %s: %v", first, addr, err)
		}
	}
	return c
}

// Exchange sends req on a new connection to addr and returns all the
// server sent until it closed the connection. A read error other than
// the end of the stream fails the test, naming what was read.
func Exchange(t testing.TB, addr, req string) string {
	t.Helper()
	c := Dial(t, addr, req)
	defer c.Close()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the answer to %.40q from %s: %v (got %q)", req, addr, err, got)
	}
	return string(got)
}

// ExchangeHTTP is Exchange for a server that answers with one HTTP/1.x
// response: it returns the response, its body read whole.
func ExchangeHTTP(t testing.TB, addr, req string) (*http.Response, string) {
	t.Helper()
	c := Dial(t, addr, req)
	defer c.Close()
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer to %.40q from %s: %v", req, addr, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body of %s from %s: %v", resp.Status, addr, err)
	}
	return resp, string(body)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago,
// for a test that must name its port before something listens on it
// (a configuration file, a second process).
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, p, _ := net.SplitHostPort(ln.Addr().String())
	return p
}

// Run runs the external program name (see Need) with args and returns
// its combined output; a failure fails the test, with the output.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(Need(t, name), args...).CombinedOutput()
	if err != nil {
		cmd := strings.Join(args, " ")
		if len(cmd) > 200 {
			cmd = cmd[:200] + "..."
		}
		t.Fatalf("%s %s: %v\n%s", name, cmd, err, out)
	}
	return string(out)
}

// Curl runs curl -sS with a 10 s limit and args.
func Curl(t testing.TB, args ...string) string {
	t.Helper()
	return Run(t, "curl", append([]string{"-sS", "--max-time", "10"}, args...)...)
}
