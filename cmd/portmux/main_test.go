package main

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/portmux/portmux/bench/loadgen"
	"github.com/portmux/portmux/internal/testtool"
)

// startDemo runs the default configuration on ephemeral ports.
func startDemo(t *testing.T) (addr, upgradeAddr string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	o := options{addr: "127.0.0.1:0", upgradeAddr: "127.0.0.1:0", grace: 5 * time.Second}
	cfg, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- run(ctx, o, cfg, io.Discard, ready, nil)
	}()
	var a []string
	select {
	case a = <-ready:
	case err := <-done:
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return a[0], a[1]
}

// TestDefaultConfig: the embedded demo passes the daemon's checks, with
// and without the command line's address overrides.
func TestDefaultConfig(t *testing.T) {
	for _, o := range []options{{}, {addr: "127.0.0.1:0", upgradeAddr: "127.0.0.1:0"}} {
		cfg, err := loadConfig(o)
		if err != nil {
			t.Fatalf("%+v: %v", o, err)
		}
		if len(cfg.Listeners) != 2 {
			t.Errorf("%+v: %d listeners; want 2", o, len(cfg.Listeners))
		}
	}
}

func TestDemo(t *testing.T) {
	addr, upAddr := startDemo(t)

	get := func(tr *http.Transport, path string) (string, http.Header) {
		t.Helper()
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header
	}
	if got, _ := get(&http.Transport{}, "/proto"); got != "HTTP/1.1\n" {
		t.Errorf("HTTP/1.1 /proto = %q", got)
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	if got, _ := get(&http.Transport{Protocols: &p}, "/proto"); got != "HTTP/2.0\n" {
		t.Errorf("h2c /proto = %q", got)
	}
	if got, h := get(&http.Transport{}, "/"); !strings.Contains(got, "<title>portmux</title>") || h.Get("X-Protocol") != "HTTP/1.1" {
		t.Errorf("page: %q, X-Protocol %q", got[:min(len(got), 80)], h.Get("X-Protocol"))
	}

	for _, a := range []string{addr, upAddr} {
		conn, _, _, err := ws.Dial(context.Background(), "ws://"+a+"/echo")
		if err != nil {
			t.Fatalf("WebSocket to %s: %v", a, err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if err := wsutil.WriteClientText(conn, []byte("hello")); err != nil {
			t.Fatal(err)
		}
		msg, op, err := wsutil.ReadServerData(conn)
		if err != nil || op != ws.OpText || string(msg) != "hello" {
			t.Errorf("echo on %s: %q %v %v", a, msg, op, err)
		}
		conn.Close()
	}

	resp, err := http.Get("http://" + upAddr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Upgrade") != "websocket" {
		t.Errorf("upgrade-only port: %s, Upgrade %q", resp.Status, resp.Header.Get("Upgrade"))
	}
}

// TestDemoInChromium loads the page in headless Chromium: it arrives over
// HTTP/1.1, opens its WebSocket through the same port and shows the echo.
func TestDemoInChromium(t *testing.T) {
	testtool.Need(t, "chromium")
	addr, _ := startDemo(t)
	dom := testtool.ChromiumDOM(t, "http://"+addr+"/")
	for _, want := range []string{`<code id="proto">HTTP/1.1</code>`, "WebSocket open\necho: hello through the mux\n"} {
		if !strings.Contains(dom, want) {
			t.Errorf("page after load lacks %q:\n%s", want, dom)
		}
	}
}

// TestShutdownWithOpenWebSocket: an open echo does not hold the drain; the
// client gets close 1001 and run returns without error.
func TestShutdownWithOpenWebSocket(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan []string, 1)
	done := make(chan error, 1)
	o := options{addr: "127.0.0.1:0", upgradeAddr: "127.0.0.1:0", grace: time.Minute}
	cfg, err := loadConfig(o)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		done <- run(ctx, o, cfg, io.Discard, ready, nil)
	}()
	a := <-ready
	conn, _, _, err := ws.Dial(context.Background(), "ws://"+a[0]+"/echo")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	wsutil.WriteClientText(conn, []byte("hi"))
	wsutil.ReadServerData(conn)
	cancel()
	hdr, err := ws.ReadHeader(conn)
	if err != nil || hdr.OpCode != ws.OpClose {
		t.Fatalf("at shutdown the client read %+v, %v; want a close frame", hdr, err)
	}
	body := make([]byte, hdr.Length)
	io.ReadFull(conn, body)
	if code := binary.BigEndian.Uint16(body); code != uint16(ws.StatusGoingAway) {
		t.Errorf("close code %d; want 1001", code)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown waited on the open WebSocket")
	}
}

// TestDemoUnderLoad drives the demo's ports with the load tool's engine:
// h2c and the WebSocket echo on the multiplexed port, the 426 on the
// upgrade-only one.
func TestDemoUnderLoad(t *testing.T) {
	addr, up := startDemo(t)
	for _, cfg := range []loadgen.Config{
		{Mode: loadgen.H2C, Concurrency: 2, Streams: 3, Target: "http://" + addr + "/proto"},
		{Mode: loadgen.WS, Concurrency: 2, Size: 1000, Target: "ws://" + addr + "/echo"},
		{Mode: loadgen.Upgrade426, Concurrency: 2, Target: "http://" + up + "/", UpgradeTokens: []string{"websocket"}},
	} {
		cfg.Requests = 20
		res, err := loadgen.Run(context.Background(), cfg)
		if err != nil || res.Requests != 20 || res.Errors != 0 {
			t.Errorf("%s at %s: %d requests, %d errors, %v; want 20 and none", cfg.Mode, cfg.Target, res.Requests, res.Errors, err)
		}
	}
}
