package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
)

// h2cClient is one stream's worker in H2C mode. The workers of one
// connection share an http.Transport that speaks HTTP/2 with prior
// knowledge (http.Protocols with only UnencryptedHTTP2) and may hold one
// connection (MaxConnsPerHost), so Streams workers put Streams requests in
// flight on it at a time.
type h2cClient struct {
	w       *worker
	tr      *http.Transport
	url     string
	payload []byte
	buf     []byte
}

// newH2CClients builds Concurrency transports and Streams clients on each;
// cleanup closes the transports' connections.
func newH2CClients(r *runner) ([]client, func()) {
	s := r.s
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	var payload []byte
	if s.Size > 0 {
		payload = bytes.Repeat([]byte{'x'}, s.Size)
	}
	clients := make([]client, 0, len(r.workers))
	trs := make([]*http.Transport, s.Concurrency)
	for i := range trs {
		owner := r.workers[i*s.Streams] // counts the connection and its bytes
		trs[i] = &http.Transport{
			Protocols:          &p,
			MaxConnsPerHost:    1,
			DisableCompression: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := net.Dialer{Timeout: s.DialTimeout}
				c, err := d.DialContext(ctx, "tcp", s.addr)
				if err != nil {
					return nil, &Error{KindDial, err}
				}
				owner.conns.Add(1)
				return &countConn{c, owner}, nil
			},
		}
		for j := 0; j < s.Streams; j++ {
			clients = append(clients, &h2cClient{
				w: r.workers[i*s.Streams+j], tr: trs[i], url: "http://" + s.addr + s.path,
				payload: payload, buf: make([]byte, 16<<10),
			})
		}
	}
	return clients, func() {
		for _, tr := range trs {
			tr.CloseIdleConnections()
		}
	}
}

func (c *h2cClient) do() error {
	s := c.w.r.s
	ctx, cancel := context.WithTimeout(c.w.r.ctx, s.Timeout)
	defer cancel()
	method, body := http.MethodGet, io.Reader(nil)
	if c.payload != nil {
		method, body = http.MethodPost, bytes.NewReader(c.payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.url, body)
	if err != nil {
		return err
	}
	req.Host = s.hostHdr
	req.Header.Set("User-Agent", "portmux-bench")
	resp, err := c.tr.RoundTrip(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	for {
		_, err := resp.Body.Read(c.buf)
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	c.w.status[resp.StatusCode]++
	if resp.ProtoMajor != 2 {
		return protoErr("response over %s, want HTTP/2.0", resp.Proto)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return &Error{KindBadStatus, fmt.Errorf("status %d", resp.StatusCode)}
	}
	return nil
}

func (c *h2cClient) close() {}
