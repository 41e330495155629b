// Package logfile is an append-only log file rotated by size: when a write
// would take the file past MaxSize, it becomes name.1 (name.1 becomes
// name.2, and so on, keeping MaxFiles) and a new file is started.
package logfile

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
)

// File is a size-rotated log file, safe for concurrent writers. Each Write
// lands whole in one file.
type File struct {
	path     string
	maxSize  int64
	maxFiles int
	sync     bool

	mu   sync.Mutex
	f    *os.File
	size int64
}

// Open opens (appending to) the log file at path, creating its directory.
// With sync set, every write is flushed to disk before Write returns (for
// the audit log).
func Open(path string, maxSize int64, maxFiles int, sync bool) (*File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	l := &File{path: path, maxSize: maxSize, maxFiles: maxFiles, sync: sync}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *File) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p, rotating first if p would not fit.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	if l.size > 0 && l.size+int64(len(p)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return 0, fmt.Errorf("logfile: rotate %s: %w", l.path, err)
		}
	}
	n, err := l.f.Write(p)
	l.size += int64(n)
	if err == nil && l.sync {
		err = l.f.Sync()
	}
	return n, err
}

func (l *File) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	l.f = nil
	os.Remove(fmt.Sprintf("%s.%d", l.path, l.maxFiles))
	for i := l.maxFiles - 1; i >= 1; i-- {
		os.Rename(fmt.Sprintf("%s.%d", l.path, i), fmt.Sprintf("%s.%d", l.path, i+1))
	}
	if err := os.Rename(l.path, l.path+".1"); err != nil {
		return err
	}
	return l.open()
}

// Close closes the file; later writes fail.
func (l *File) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
