//go:build !linux || ase_portable

package proxy

import "github.com/ase-project/ase/internal/dataport"

// FastPath is nil where there are no event loops: they are built on epoll
// (internal/evloop), so on macOS, the BSDs and the other systems Go runs
// on, the general server (fasthttp) serves every connection of the plain
// port, as inline_event_loops=false does on Linux. Decisions and what is
// forwarded are the same on both paths (internal/frontdoor); only the
// speed differs.
func (p *Proxy) FastPath() dataport.Fast { return nil }
