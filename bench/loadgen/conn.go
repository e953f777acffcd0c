package loadgen

import (
	"math/rand/v2"
	"net"
)

// countConn counts the bytes of a connection into a worker's totals. It is
// safe for concurrent use as far as the wrapped Conn is.
type countConn struct {
	net.Conn
	w *worker
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.w.recv.Add(uint64(n))
	return n, err
}

func (c *countConn) Write(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	c.w.sent.Add(uint64(n))
	return n, err
}

// pattern returns n pseudo-random bytes, different for each seed, so that
// an echo that reorders or mixes up data does not match.
func pattern(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x706f72746d7578))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := i; j < min(i+8, n); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}
