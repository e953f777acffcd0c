package h2c

import (
	"encoding/xml"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portmux/portmux/internal/testtool"
)

// h2specResult is what one h2spec run reports: how many cases passed and
// which failed.
type h2specResult struct {
	passed int
	failed []string
}

// runH2spec runs h2spec against addr: the sections named, or all.
func runH2spec(t *testing.T, bin, addr string, strict bool, sections ...string) h2specResult {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	report := filepath.Join(t.TempDir(), "report.xml")
	args := append(sections, "-h", host, "-p", port, "-o", "2", "-j", report)
	if strict {
		args = append(args, "-S")
	}
	// h2spec exits non-zero when any case fails; the report tells which.
	out, _ := exec.Command(bin, args...).CombinedOutput()
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("h2spec wrote no report: %v\n%s", err, out)
	}
	var suites struct {
		Suites []struct {
			Cases []struct {
				Package string    `xml:"package,attr"`
				Name    string    `xml:"classname,attr"`
				Failure *struct{} `xml:"failure"`
				Error   *struct{} `xml:"error"`
				Skipped *struct{} `xml:"skipped"`
			} `xml:"testcase"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(data, &suites); err != nil {
		t.Fatalf("h2spec report: %v", err)
	}
	var r h2specResult
	for _, s := range suites.Suites {
		for _, c := range s.Cases {
			switch {
			case c.Failure != nil || c.Error != nil:
				r.failed = append(r.failed, c.Package+" "+c.Name)
			case c.Skipped == nil:
				r.passed++
			}
		}
	}
	slices.Sort(r.failed)
	return r
}

// TestH2spec: h2spec scores the mux-fronted h2c listener at least as well
// as bare net/http on the same machine, case by case, in the generic and
// the strict run: every case that fails through the mux also fails on bare
// net/http, which fails a few on purpose. A case that fails through the
// mux alone is run twice more on both, so that a case flaky under load
// on a shared machine is not taken for a difference.
func TestH2spec(t *testing.T) {
	bin := testtool.Need(t, "h2spec")
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("h2spec\n"))
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	bare := &http.Server{Handler: handler, Protocols: &p, ReadHeaderTimeout: 5 * time.Second}
	var wg sync.WaitGroup
	wg.Go(func() { bare.Serve(ln) })
	defer func() { bare.Close(); wg.Wait() }()
	muxed := serve(t, &Server{HTTP: &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}}, false)
	// Not behind GRPC(): h2spec waits for the ACK of its own SETTINGS
	// before it sends a request, which no server sends before the mux
	// has routed the connection (see mux.HTTP2HeaderField).
	targets := map[string]string{"through the mux": muxed}

	for _, strict := range []bool{false, true} {
		want := runH2spec(t, bin, ln.Addr().String(), strict)
		if want.passed < 100 {
			t.Fatalf("strict=%v: bare net/http passed only %d cases; h2spec did not run properly", strict, want.passed)
		}
		t.Logf("strict=%v: bare net/http %d passed, failed:\n%s", strict, want.passed, strings.Join(want.failed, "\n"))
		for name, addr := range targets {
			got := runH2spec(t, bin, addr, strict)
			t.Logf("strict=%v: %s %d passed, failed:\n%s", strict, name, got.passed, strings.Join(got.failed, "\n"))
			for _, c := range got.failed {
				if slices.Contains(want.failed, c) {
					continue
				}
				section := strings.Fields(c)[0]
				muxFails, bareFails := true, false
				for range 2 {
					muxFails = muxFails && slices.Contains(runH2spec(t, bin, addr, strict, section).failed, c)
					bareFails = bareFails || slices.Contains(runH2spec(t, bin, ln.Addr().String(), strict, section).failed, c)
				}
				if muxFails && !bareFails {
					t.Errorf("strict=%v: %s fails %s, every time, and passes on bare net/http", strict, c, name)
				}
			}
		}
	}
}
