//go:build !linux

package relay

import "net"

// splicer is Linux's socket-to-socket copy; elsewhere there is none.
type splicer struct{}

func newSplicer(dst, src net.Conn) *splicer { return nil }

func (s *splicer) close() {}

func (s *splicer) step(limit int64) (int64, error) { panic("relay: no splice here") }
