//go:build !unix

package relay

import (
	"net"
	"syscall"
)

// rawConnOf: reads go through the conn's Read here.
func rawConnOf(c net.Conn) syscall.RawConn { return nil }

func readPooled(rc syscall.RawConn, bufp **[]byte) (int, error) {
	panic("relay: no raw reads here")
}
