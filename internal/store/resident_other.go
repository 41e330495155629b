//go:build !linux || ase_portable

package store

import bolt "go.etcd.io/bbolt"

// dropResident does nothing where the map's pages are not dropped
// (resident.go).
func dropResident(*bolt.DB, int64) {}
