//go:build linux && !ase_portable

package dataport

import (
	"net"

	"github.com/ase-project/ase/internal/evloop"
)

// listenerFD gives a Fast path the listening socket (see evloop.ListenerFD).
func listenerFD(ln *net.TCPListener) (int, error) { return evloop.ListenerFD(ln) }
