package loadgen_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/portmux/portmux/bench/loadgen"
)

// Run a fixed number of requests, each on a new connection, and read the
// result.
func Example() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello\n")
	}))
	defer srv.Close()

	res, err := loadgen.Run(context.Background(), loadgen.Config{
		Mode:        loadgen.HTTP1,
		Target:      srv.URL + "/",
		Concurrency: 4,
		Requests:    100,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Requests, "requests,", res.Connections, "connections,", res.Errors, "errors")
	fmt.Println("status 200:", res.Status["200"])
	fmt.Println("p99 within the slowest:", res.Histogram.Quantile(0.99) <= res.Histogram.Max())
	// Output:
	// 100 requests, 100 connections, 0 errors
	// status 200: 100
	// p99 within the slowest: true
}
