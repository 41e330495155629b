//go:build !linux || ase_portable

package rawio

import "net"

// Wrap returns c: the raw reads and writes are Linux's (see the package
// documentation), and net.TCPConn's are correct everywhere.
func Wrap(c net.Conn) net.Conn { return c }
