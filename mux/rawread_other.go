//go:build !unix

package mux

import "net"

// rawFirstRead is only for Unix sockets; elsewhere the first read is a
// plain Read into a pooled buffer.
func rawFirstRead(net.Conn, int) (*[]byte, bool, error) { return nil, false, nil }
