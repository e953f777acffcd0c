package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// TestGRPCBesidePlainHTTP2: a real grpc-go client (which waits for the
// server's SETTINGS before its first HEADERS) and plain HTTP/1.1 and h2c
// clients share one port, with gRPC served by grpc-go's own server and by
// net/http (where a stray SETTINGS ACK would be a PROTOCOL_ERROR).
func TestGRPCBesidePlainHTTP2(t *testing.T) {
	for _, viaNetHTTP := range []bool{false, true} {
		name := "grpc-go server"
		if viaNetHTTP {
			name = "net/http server"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			s := serve(ln, viaNetHTTP, 0)
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := s.shutdown(ctx); err != nil {
					t.Errorf("shutdown: %v", err)
				}
			}()
			addr := ln.Addr().String()

			cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			client := healthpb.NewHealthClient(cc)
			for i := range 20 {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
				cancel()
				if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("call %d: %v %v", i, resp, err)
				}
			}

			var p http.Protocols
			p.SetUnencryptedHTTP2(true)
			h2 := &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
			defer h2.CloseIdleConnections()
			h1 := &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}
			defer h1.CloseIdleConnections()
			for c, want := range map[*http.Client]string{h2: "hello over HTTP/2.0\n", h1: "hello over HTTP/1.1\n"} {
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != want {
					t.Errorf("got %q; want %q", b, want)
				}
			}
			if curl, err := exec.LookPath("curl"); err == nil || os.Getenv("CI") != "" {
				out, err := exec.Command(curl, "-sS", "--max-time", "10", "--http2-prior-knowledge", "http://"+addr+"/").CombinedOutput()
				if err != nil || string(out) != "hello over HTTP/2.0\n" {
					t.Errorf("curl: %q %v", out, err)
				}
			}
			if got := s.m.Stats().Rejected; len(got) != 0 {
				t.Errorf("rejections: %v", got)
			}
		})
	}
}

// TestIdleChannel: a channel that connects at once (as round_robin does)
// and makes its first call only after the sniff timeout still reaches
// the gRPC server, not the web server behind HTTP2().
func TestIdleChannel(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := serve(ln, false, 200*time.Millisecond)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		s.shutdown(ctx)
	}()
	cc, err := grpc.NewClient("passthrough:///"+ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	cc.Connect()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for st := cc.GetState(); st != connectivity.Ready; st = cc.GetState() {
		if !cc.WaitForStateChange(ctx, st) {
			t.Fatalf("channel never ready: %v", st)
		}
	}
	time.Sleep(time.Second) // five sniff timeouts
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first call after idling: %v %v", resp, err)
	}
}
