// Command capture records the first bytes a real client sends to a TCP
// server, for use as a seed corpus of the sniff package's parsers.
//
// It lives under testdata so that `go build ./...` and `go test ./...` ignore
// it; run it explicitly from the repository root:
//
//	go run ./sniff/testdata/capture -o out.bin -portfile port.txt
//
// Modes (-mode):
//
//	listen     (default) listen on 127.0.0.1:0, write the port to stdout and
//	           to -portfile, accept exactly one connection, record what the
//	           client sends until -quiet elapses after the last byte, -max
//	           bytes are read or -timeout expires, write the bytes to -o and
//	           exit. The server never writes a single byte to the client.
//	           With -wspage, a second listener serves an HTML page (port in
//	           -pageportfile) whose script opens
//	           new WebSocket("ws://127.0.0.1:<captureport>/echo"), so that a
//	           browser's WebSocket opening handshake is recorded.
//	tlsclient  act as a Go crypto/tls client (default config, ServerName
//	           -servername, NextProtos h2,http/1.1) dialing -addr.
//	httpclient act as a Go net/http client doing GET -url.
//	split      read a captured TLS ClientHello from -i, re-frame the
//	           handshake bytes into -parts TLS records (RFC 8446 §5.1
//	           allows a handshake message to span records) and write -o.
//	tlsinfo    print a short summary of the TLS ClientHello in -i.
//	freeport   print a currently free 127.0.0.1 TCP port (for helper
//	           servers such as haproxy's frontend) and exit.
//
// Standard library only.
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

func main() {
	var (
		mode         = flag.String("mode", "listen", "listen | tlsclient | httpclient | split | tlsinfo | freeport")
		out          = flag.String("o", "", "output file (listen, split)")
		in           = flag.String("i", "", "input file (split, tlsinfo)")
		portFile     = flag.String("portfile", "", "listen: write the capture port to this file once listening")
		quiet        = flag.Duration("quiet", 500*time.Millisecond, "listen: stop reading this long after the last byte")
		timeout      = flag.Duration("timeout", 30*time.Second, "overall timeout (listen: from start, including waiting for the connection; clients: whole request)")
		maxBytes     = flag.Int("max", 64<<10, "listen: byte cap")
		wsPage       = flag.Bool("wspage", false, "listen: also serve an HTML page opening a WebSocket to the capture port")
		pagePortFile = flag.String("pageportfile", "", "listen -wspage: write the page port to this file")
		addr         = flag.String("addr", "", "tlsclient: host:port to dial")
		serverName   = flag.String("servername", "www.example.com", "tlsclient: SNI server name")
		url          = flag.String("url", "", "httpclient: URL to GET")
		parts        = flag.Int("parts", 3, "split: number of records")
	)
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("capture: ")

	var err error
	switch *mode {
	case "listen":
		if *out == "" {
			log.Fatal("-o is required")
		}
		err = listen(*out, *portFile, *pagePortFile, *wsPage, *quiet, *timeout, *maxBytes)
	case "tlsclient":
		err = tlsClient(*addr, *serverName, *timeout)
	case "httpclient":
		err = httpClient(*url, *timeout)
	case "split":
		err = split(*in, *out, *parts)
	case "tlsinfo":
		err = tlsInfo(*in)
	case "freeport":
		err = freePort()
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		log.Fatal(err)
	}
}

// writeFileAtomic writes data to name via a temporary file and a rename, so
// a script polling for name never sees a partial file.
func writeFileAtomic(name string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), ".capture-*")
	if err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), name)
}

const pageHTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>portmux ws capture</title></head>
<body><p id="s">connecting</p>
<script>
var ws = new WebSocket("ws://127.0.0.1:%d/echo");
ws.onopen = function () { document.getElementById("s").textContent = "open"; };
ws.onerror = function () { document.getElementById("s").textContent = "error"; };
ws.onclose = function () { document.getElementById("s").textContent = "closed"; };
</script></body></html>
`

func listen(out, portFile, pagePortFile string, wsPage bool, quiet, timeout time.Duration, maxBytes int) error {
	deadline := time.Now().Add(timeout)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port

	if wsPage {
		pln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer pln.Close()
		page := fmt.Sprintf(pageHTML, port)
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "text/html; charset=utf-8")
				w.Header().Set("Cache-Control", "no-store")
				io.WriteString(w, page)
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		go srv.Serve(pln)
		defer srv.Close()
		pport := pln.Addr().(*net.TCPAddr).Port
		fmt.Fprintf(os.Stderr, "capture: page http://127.0.0.1:%d/\n", pport)
		if pagePortFile != "" {
			if err := writeFileAtomic(pagePortFile, []byte(strconv.Itoa(pport)+"\n")); err != nil {
				return err
			}
		}
	}

	fmt.Println(port)
	if portFile != "" {
		if err := writeFileAtomic(portFile, []byte(strconv.Itoa(port)+"\n")); err != nil {
			return err
		}
	}

	ln.(*net.TCPListener).SetDeadline(deadline)
	conn, err := ln.Accept()
	if err != nil {
		return fmt.Errorf("accept: %w", err)
	}
	ln.Close() // exactly one connection
	defer conn.Close()

	var buf []byte
	chunk := make([]byte, 4096)
	for len(buf) < maxBytes {
		// Before the first byte wait up to the overall deadline; after it,
		// stop once the client has been quiet for `quiet`.
		d := deadline
		if len(buf) > 0 {
			if q := time.Now().Add(quiet); q.Before(d) {
				d = q
			}
		}
		conn.SetReadDeadline(d)
		n := min(len(chunk), maxBytes-len(buf))
		n, err = conn.Read(chunk[:n])
		buf = append(buf, chunk[:n]...)
		if err != nil {
			var ne net.Error
			if errors.Is(err, io.EOF) || (errors.As(err, &ne) && ne.Timeout()) {
				break
			}
			if len(buf) > 0 {
				// e.g. connection reset by the client after sending:
				// keep what was received.
				log.Printf("read: %v (keeping %d bytes)", err, len(buf))
				break
			}
			return fmt.Errorf("read: %w", err)
		}
	}
	if len(buf) == 0 {
		return errors.New("client sent nothing")
	}
	if err := writeFileAtomic(out, buf); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "capture: wrote %d bytes to %s\n", len(buf), out)
	return nil
}

func freePort() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	return nil
}

func tlsClient(addr, serverName string, timeout time.Duration) error {
	if addr == "" {
		return errors.New("-addr is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{
		ServerName: serverName,
		NextProtos: []string{"h2", "http/1.1"},
	}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err == nil {
		c.Close()
		return errors.New("unexpected: TLS handshake succeeded against a silent server")
	}
	// The capture server never answers, so the handshake is expected to fail.
	fmt.Fprintf(os.Stderr, "capture: tls client finished (expected error: %v)\n", err)
	return nil
}

func httpClient(url string, timeout time.Duration) error {
	if url == "" {
		return errors.New("-url is required")
	}
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err == nil {
		resp.Body.Close()
		return errors.New("unexpected: got an HTTP response from a silent server")
	}
	fmt.Fprintf(os.Stderr, "capture: http client finished (expected error: %v)\n", err)
	return nil
}

type record struct {
	typ     byte
	version uint16
	body    []byte
}

func parseRecords(b []byte) (recs []record, rest []byte) {
	for len(b) >= 5 {
		n := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			break
		}
		recs = append(recs, record{b[0], binary.BigEndian.Uint16(b[1:3]), b[5 : 5+n]})
		b = b[5+n:]
	}
	return recs, b
}

func split(in, out string, parts int) error {
	if in == "" || out == "" {
		return errors.New("-i and -o are required")
	}
	if parts < 2 {
		return errors.New("-parts must be >= 2")
	}
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	recs, rest := parseRecords(b)
	var hs []byte
	var version uint16
	i := 0
	for ; i < len(recs) && recs[i].typ == 22; i++ {
		if i == 0 {
			version = recs[i].version
		}
		hs = append(hs, recs[i].body...)
	}
	if len(hs) == 0 {
		return errors.New("input does not start with a TLS handshake record")
	}
	if len(hs) < parts {
		return fmt.Errorf("handshake too short (%d bytes) for %d parts", len(hs), parts)
	}
	var o bytes.Buffer
	size := (len(hs) + parts - 1) / parts
	for off := 0; off < len(hs); off += size {
		end := min(off+size, len(hs))
		o.Write([]byte{22, byte(version >> 8), byte(version)})
		binary.Write(&o, binary.BigEndian, uint16(end-off))
		o.Write(hs[off:end])
	}
	// Anything after the handshake records is kept verbatim.
	for ; i < len(recs); i++ {
		r := recs[i]
		o.Write([]byte{r.typ, byte(r.version >> 8), byte(r.version)})
		binary.Write(&o, binary.BigEndian, uint16(len(r.body)))
		o.Write(r.body)
	}
	o.Write(rest)
	return writeFileAtomic(out, o.Bytes())
}

var groupNames = map[uint16]string{
	0x0017: "secp256r1", 0x0018: "secp384r1", 0x0019: "secp521r1",
	0x001d: "x25519", 0x001e: "x448", 0x11ec: "X25519MLKEM768",
	0x11eb: "SecP256r1MLKEM768", 0x11ed: "SecP384r1MLKEM1024",
	0x6399: "X25519Kyber768Draft00",
	0x0100: "ffdhe2048", 0x0101: "ffdhe3072", 0x0102: "ffdhe4096",
	0x0103: "ffdhe6144", 0x0104: "ffdhe8192",
}

func groupName(g uint16) string {
	if n, ok := groupNames[g]; ok {
		return n
	}
	if g&0x0f0f == 0x0a0a {
		return fmt.Sprintf("GREASE(0x%04x)", g)
	}
	return fmt.Sprintf("0x%04x", g)
}

// tlsInfo prints a summary of a captured ClientHello. It is deliberately
// simple and only used to write the captures README.
func tlsInfo(in string) error {
	b, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	recs, rest := parseRecords(b)
	var hs []byte
	var sizes []string
	for _, r := range recs {
		sizes = append(sizes, fmt.Sprintf("type=%d ver=0x%04x len=%d", r.typ, r.version, len(r.body)))
		if r.typ == 22 {
			hs = append(hs, r.body...)
		}
	}
	fmt.Printf("file=%s bytes=%d records=%d [%s] trailing=%d\n", in, len(b), len(recs), strings.Join(sizes, "; "), len(rest))
	if len(hs) < 4 || hs[0] != 1 {
		return errors.New("no ClientHello")
	}
	hlen := int(hs[1])<<16 | int(hs[2])<<8 | int(hs[3])
	fmt.Printf("handshake type=1 (ClientHello) length=%d (+4 header)\n", hlen)
	p := hs[4:]
	if len(p) > hlen {
		p = p[:hlen]
	}
	need := func(n int) bool { return len(p) >= n }
	if !need(2 + 32 + 1) {
		return errors.New("short ClientHello")
	}
	legacy := binary.BigEndian.Uint16(p)
	p = p[34:]
	sidLen := int(p[0])
	p = p[1+sidLen:]
	csLen := int(binary.BigEndian.Uint16(p))
	p = p[2+csLen:]
	cmLen := int(p[0])
	p = p[1+cmLen:]
	extLen := int(binary.BigEndian.Uint16(p))
	p = p[2:]
	if len(p) > extLen {
		p = p[:extLen]
	}
	fmt.Printf("legacy_version=0x%04x session_id=%d cipher_suites=%d extensions_bytes=%d\n", legacy, sidLen, csLen/2, extLen)
	var exts []string
	for len(p) >= 4 {
		typ := binary.BigEndian.Uint16(p)
		l := int(binary.BigEndian.Uint16(p[2:]))
		if len(p) < 4+l {
			break
		}
		d := p[4 : 4+l]
		p = p[4+l:]
		exts = append(exts, fmt.Sprintf("%d", typ))
		switch typ {
		case 0: // server_name
			if len(d) >= 5 {
				n := int(binary.BigEndian.Uint16(d[3:]))
				if len(d) >= 5+n {
					fmt.Printf("SNI=%s\n", d[5:5+n])
				}
			}
		case 16: // ALPN
			var protos []string
			if len(d) >= 2 {
				q := d[2:]
				for len(q) > 0 && len(q) >= 1+int(q[0]) {
					protos = append(protos, string(q[1:1+int(q[0])]))
					q = q[1+int(q[0]):]
				}
			}
			fmt.Printf("ALPN=%s\n", strings.Join(protos, ","))
		case 43: // supported_versions
			var vs []string
			if len(d) >= 1 {
				q := d[1:]
				for len(q) >= 2 {
					vs = append(vs, fmt.Sprintf("0x%04x", binary.BigEndian.Uint16(q)))
					q = q[2:]
				}
			}
			fmt.Printf("supported_versions=%s\n", strings.Join(vs, ","))
		case 10: // supported_groups
			var gs []string
			if len(d) >= 2 {
				q := d[2:]
				for len(q) >= 2 {
					gs = append(gs, groupName(binary.BigEndian.Uint16(q)))
					q = q[2:]
				}
			}
			fmt.Printf("supported_groups=%s\n", strings.Join(gs, ","))
		case 51: // key_share
			var ks []string
			if len(d) >= 2 {
				q := d[2:]
				for len(q) >= 4 {
					g := binary.BigEndian.Uint16(q)
					kl := int(binary.BigEndian.Uint16(q[2:]))
					ks = append(ks, fmt.Sprintf("%s(%d bytes)", groupName(g), kl))
					if len(q) < 4+kl {
						break
					}
					q = q[4+kl:]
				}
			}
			fmt.Printf("key_share=%s\n", strings.Join(ks, ","))
		}
	}
	fmt.Printf("extension_types=%s\n", strings.Join(exts, ","))
	return nil
}
