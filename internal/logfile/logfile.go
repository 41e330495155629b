// Package logfile is an append-only log file rotated by size: when a write
// would take the file past MaxSize, it becomes name.1 (name.1 becomes
// name.2, and so on, keeping MaxFiles) and a new file is started.
package logfile

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/ase-project/ase/internal/durable"
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
//
// With sync set, the file's directory entry is durable too: the
// directories Open makes, and the file whenever it is created (at Open or
// by a rotation), are synced into their parents before any line is
// acknowledged, so a power cut cannot lose the file whose lines were
// fsynced.
func Open(path string, maxSize int64, maxFiles int, sync bool) (*File, error) {
	made, err := durable.MakeDirs(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	if sync {
		if err := durable.SyncDirs(made...); err != nil {
			return nil, err
		}
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
	if l.sync {
		// A new file (or, after a rotation, the renamed ones) is kept by
		// a power cut only once its directory is synced.
		if err := durable.SyncDirs(filepath.Dir(l.path)); err != nil {
			f.Close()
			return err
		}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	l.f, l.size = f, st.Size()
	return nil
}

// Write appends p, rotating whenever the next lines would take the file
// past MaxSize. p is split only at line ends, so a line never straddles
// two files; a single line longer than MaxSize gets a file of its own.
func (l *File) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return 0, os.ErrClosed
	}
	written := 0
	for len(p) > 0 {
		chunk := p
		if l.size+int64(len(p)) > l.maxSize {
			cut := -1
			if room := l.maxSize - l.size; room > 0 {
				cut = bytes.LastIndexByte(p[:min(room, int64(len(p)))], '\n')
			}
			switch {
			case cut >= 0:
				chunk = p[:cut+1]
			case l.size > 0:
				if err := l.rotate(); err != nil {
					return written, fmt.Errorf("logfile: rotate %s: %w", l.path, err)
				}
				continue
			default: // an empty file, and a first line longer than MaxSize
				if i := bytes.IndexByte(p, '\n'); i >= 0 {
					chunk = p[:i+1]
				}
			}
		}
		n, err := l.f.Write(chunk)
		l.size += int64(n)
		written += n
		if err != nil {
			return written, err
		}
		p = p[len(chunk):]
	}
	if l.sync {
		if err := l.f.Sync(); err != nil {
			return written, err
		}
	}
	return written, nil
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
