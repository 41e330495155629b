//go:build !linux || ase_portable

package dataport

import (
	"errors"
	"net"
)

// listenerFD: the only Fast path (the event loops, internal/evloop) is
// Linux's; elsewhere Options.Fast is never set (see proxy.Proxy.FastPath).
func listenerFD(*net.TCPListener) (int, error) {
	return -1, errors.New("the event loops (inline_event_loops) run on Linux only")
}
