package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func bench(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = benchMain(context.Background(), args, &o, &e, false)
	return code, o.String(), e.String()
}

func TestBenchUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no TARGET"},
		{[]string{"a:1", "b:2"}, "one TARGET"},
		{[]string{"-mode", "http3", "a:1"}, "-mode"},
		{[]string{"-c", "0", "a:1"}, "-c 0"},
		{[]string{"-streams", "4", "a:1"}, "-streams applies to -mode h2c"},
		{[]string{"-mode", "h2c", "-streams", "0", "a:1"}, "-streams 0"},
		{[]string{"-d", "-1s", "a:1"}, "-d -1s"},
		{[]string{"-n", "-5", "a:1"}, "-n -5"},
		{[]string{"-rate", "-1", "a:1"}, "-rate -1"},
		{[]string{"-rate", "NaN", "a:1"}, "-rate NaN"},
		{[]string{"-rate", "+Inf", "a:1"}, "-rate +Inf"},
		{[]string{"-rate", "1e300", "a:1"}, "-rate 1e+300"},
		{[]string{"-rate", "1000000001", "a:1"}, "-rate 1.000000001e+09"},
		{[]string{"-d", "0s", "a:1"}, "-d 0s"},
		{[]string{"-size", "-1", "a:1"}, "-size -1"},
		{[]string{"-size", "67108865", "a:1"}, "-size 67108865: want 0 to 67108864"},
		{[]string{"-mode", "tcp", "-size", "1099511627777", "tcp://a:1"}, "-size 1099511627777: want 0 to 1099511627776"},
		{[]string{"-mode", "426", "-size", "10", "a:1"}, "-size does not apply"},
		{[]string{"-upgrade", "h2c", "a:1"}, "-upgrade applies to -mode 426"},
		{[]string{"-mode", "426", "-upgrade", "a,,b", "a:1"}, "-upgrade"},
		{[]string{"-timeout", "0s", "a:1"}, "-timeout 0s"},
		{[]string{"-drain", "0s", "a:1"}, "-drain 0s"},
		{[]string{"-n", "5", "-drain", "2s", "a:1"}, "-drain applies only with -d"},
		{[]string{"-dial-timeout", "0s", "a:1"}, "-dial-timeout 0s"},
		{[]string{"-bogus", "a:1"}, "-bogus"},
		{[]string{"-c", "x", "a:1"}, "-c"},
		{[]string{"https://127.0.0.1:1/"}, "TLS is not supported"},
		{[]string{"-mode", "tcp", "http://127.0.0.1:1/"}, "tcp://"},
	} {
		code, out, errs := bench(t, tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("loadgen %q: exit %d, stdout %q, stderr %q; want 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
	if code, _, errs := bench(t, "-h"); code != 0 || !strings.Contains(errs, "usage: loadgen") {
		t.Errorf("-h: exit %d, %q", code, errs)
	}
}

func TestBenchRun(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hi\n")
	}))
	defer srv.Close()
	svg := filepath.Join(t.TempDir(), "lat.svg")

	// Flags after the target too.
	code, out, errs := bench(t, "-json", srv.URL+"/", "-n", "50", "-c", "2", "-svg", svg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		Mode     string            `json:"mode"`
		Requests uint64            `json:"requests"`
		Errors   uint64            `json:"errors"`
		Status   map[string]uint64 `json:"status"`
		Latency  map[string]float64
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if res.Mode != "http1" || res.Requests != 50 || res.Errors != 0 || res.Status["200"] != 50 {
		t.Errorf("result %+v", res)
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ XMLName xml.Name }
	if err := xml.Unmarshal(b, &doc); err != nil || doc.XMLName.Local != "svg" {
		t.Errorf("-svg file: %v, root %v", err, doc.XMLName)
	}

	code, out, _ = bench(t, "-mode", "http1-keepalive", "-n", "20", srv.URL)
	if code != 0 || !strings.Contains(out, "20 ok, 0 errors") {
		t.Errorf("text output, exit %d:\n%s", code, out)
	}
}

// TestBenchAllFail: a run in which every request failed exits 1.
func TestBenchAllFail(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	code, out, _ := bench(t, "-n", "3", addr)
	if code != 1 || !strings.Contains(out, "dial") {
		t.Errorf("exit %d; want 1 and dial errors:\n%s", code, out)
	}
}

// TestBenchProgress: -progress rewrites one line on stderr, then clears
// it, and leaves stdout to the result.
func TestBenchProgress(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	code, out, errs := bench(t, "-progress", "-rate", "200", "-d", "2200ms", srv.URL)
	if code != 0 || !strings.HasPrefix(out, "loadgen: mode http1") {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	if !strings.HasPrefix(errs, "\r") || !strings.Contains(errs, "requests/s in the last second\x1b[K") ||
		!strings.HasSuffix(errs, "\r\x1b[K") || strings.Contains(errs, "\n") {
		t.Errorf("stderr %q; want one line rewritten with \\r, then cleared", errs)
	}
	if _, _, errs := bench(t, "-n", "5", srv.URL); errs != "" {
		t.Errorf("without -progress (not a terminal), stderr %q; want nothing", errs)
	}
}

func TestIsTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if isTerminal(w) {
		t.Error("a pipe counts as a terminal")
	}
}
