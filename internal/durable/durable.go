// Package durable makes new files and directories survive a power cut:
// an fsync of a file keeps its data, not its directory entry, which is
// kept only once the directory holding it is synced too.
package durable

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// MakeDirs makes dir and the directories above it that are missing, and
// returns the directories whose fsync makes them all durable: dir's
// parent, up to the parent of the topmost one made. (Making a directory
// changes its parent; a power cut keeps the change only once the parent
// is synced.)
func MakeDirs(dir string) (toSync []string, err error) {
	top := "" // the topmost directory that is missing
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); !errors.Is(err, fs.ErrNotExist) {
			break
		}
		top = d
		if d == filepath.Dir(d) {
			break
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	if top == "" {
		return nil, nil
	}
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		toSync = append(toSync, filepath.Dir(d))
		if d == top {
			return toSync, nil
		}
	}
}

// SyncDirs fsyncs each directory in dirs.
func SyncDirs(dirs ...string) error {
	for _, dir := range dirs {
		d, err := os.Open(dir)
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
