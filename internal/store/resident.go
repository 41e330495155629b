//go:build linux && !ase_portable

package store

import (
	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// dropResident tells the kernel this process no longer needs the first
// size bytes of db's map of its file resident. bbolt reads the file
// through a shared, read-only map: the pages a large commit or a first
// load read are the kernel's page cache, yet they count in the process's
// resident memory for as long as they stay mapped in. They stay cached;
// the next read of one maps it in again, without I/O. Called with every
// writer excluded (Bolt.mu), so that the map is not replaced meanwhile.
func dropResident(db *bolt.DB, size int64) {
	if size > 0 {
		unix.Syscall(unix.SYS_MADVISE, db.Info().Data, uintptr(size), unix.MADV_DONTNEED)
	}
}
