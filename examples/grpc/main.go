// Command grpc serves gRPC and a web page on one cleartext port: gRPC
// clients reach a grpc.Server, browsers and curl reach an http.Server over
// HTTP/1.1 or h2c, routed by portmux on the first request's content-type.
//
//	go run . -addr 127.0.0.1:8090
//	curl --http2-prior-knowledge http://127.0.0.1:8090/
//	grpc-health-probe -addr 127.0.0.1:8090
//
// It lives in a module of its own so that gRPC's dependencies stay out of
// portmux's go.mod.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/portmux/portmux/h2c"
	"github.com/portmux/portmux/mux"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	s := serve(ln, false, 0)
	fmt.Printf("gRPC (health service) and HTTP on %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.shutdown(shutdown); err != nil {
		log.Fatal(err)
	}
}

// server is the mux with its two servers.
type server struct {
	m    *mux.Mux
	grpc *grpc.Server
	web  []*h2c.Server
	wg   sync.WaitGroup
}

// serve starts serving on ln. With viaNetHTTP, gRPC is served by net/http
// (grpc.Server.ServeHTTP) instead of gRPC's own HTTP/2 server: the way
// that broke behind cmux when a stray SETTINGS ACK reached net/http.
// sniffTimeout, if not zero, replaces the mux's default.
func serve(ln net.Listener, viaNetHTTP bool, sniffTimeout time.Duration) *server {
	s := &server{m: new(mux.Mux), grpc: grpc.NewServer()}
	s.m.SniffTimeout = sniffTimeout
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(s.grpc, hs)

	page := &h2c.Server{HTTP: &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, "hello over %s\n", r.Proto)
		}),
	}}
	s.web = append(s.web, page)

	grpcLn := s.m.Listen("grpc", mux.GRPC()) // before HTTP2(), which takes the rest
	h2 := s.m.Listen("h2c", mux.HTTP2())
	h1 := s.m.Listen("http1", mux.HTTP1())
	if viaNetHTTP {
		rpc := &h2c.Server{HTTP: &http.Server{Handler: s.grpc, ReadHeaderTimeout: 10 * time.Second}}
		s.web = append(s.web, rpc)
		s.wg.Go(func() { rpc.Serve(grpcLn) })
	} else {
		s.wg.Go(func() { s.grpc.Serve(grpcLn) })
	}
	s.wg.Go(func() { page.Serve(h2) })
	s.wg.Go(func() { page.Serve(h1) })
	s.wg.Go(func() { s.m.Serve(ln) })
	return s
}

// shutdown stops accepting and lets calls and requests in flight finish,
// bounded by ctx.
func (s *server) shutdown(ctx context.Context) error {
	err := s.m.Shutdown(ctx)
	for _, w := range s.web {
		err = errors.Join(err, w.Shutdown(ctx))
	}
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
		err = errors.Join(err, ctx.Err())
	}
	s.wg.Wait()
	return err
}
