//go:build !unix

package daemon

import (
	"errors"
	"net"
	"syscall"
)

func reusePort(_, _ string, _ syscall.RawConn) error {
	return errors.New("reuse_port: SO_REUSEPORT is not available on this system")
}

// inheritedListeners: systemd socket activation exists on Unix only.
func inheritedListeners() (map[string]net.Listener, error) { return nil, nil }
