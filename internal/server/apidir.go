package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/store"
)

// importPrefix records, per api_id, the digest of the api_dir file last
// imported.
const importPrefix = "import/"

// apiFile is one decoded api_dir file.
type apiFile struct {
	api    *apidef.API
	digest string
}

// readAPIDir decodes and validates every <api_id>.json file of dir,
// reporting all problems at once, and returns them sorted by api_id.
func readAPIDir(dir string) ([]apiFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("api_dir: %w", err)
	}
	var files []apiFile
	var problems []error
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			problems = append(problems, fmt.Errorf("api_dir: %w", err))
			continue
		}
		a, err := apidef.Decode(strings.TrimSuffix(name, ".json"), data)
		if err != nil {
			problems = append(problems, fmt.Errorf("api_dir: %s: %w", name, err))
			continue
		}
		sum := sha256.Sum256(data)
		files = append(files, apiFile{api: a, digest: hex.EncodeToString(sum[:])})
	}
	if len(problems) > 0 {
		return nil, errors.Join(problems...)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].api.ID < files[j].api.ID })
	return files, nil
}

// CheckAPIDir validates api_dir's files on their own and against each
// other (conflicting URLs and hostnames), as start-up would on an empty
// store, without storing anything. It returns how many files it checked
// and, as start-up logs them, the vendor fields the files set that mean
// nothing here ("api_dir: <id>.json: <field>: ignored: ...").
func CheckAPIDir(ctx context.Context, dir string) (int, []string, error) {
	if dir == "" {
		return 0, nil, nil
	}
	files, err := readAPIDir(dir)
	if err != nil {
		return 0, nil, err
	}
	var ignored []string
	view := newOverlay(emptyReader{})
	for _, f := range files {
		b, err := catalog.CreateAPI(ctx, view, f.api)
		if err != nil {
			return 0, nil, fmt.Errorf("api_dir: %s.json: %w", f.api.ID, err)
		}
		view.apply(b.Ops)
		for _, note := range f.api.Ignored {
			ignored = append(ignored, "api_dir: "+f.api.ID+".json: "+note)
		}
	}
	return len(files), ignored, nil
}

// emptyReader is a store with nothing in it.
type emptyReader struct{}

func (emptyReader) Get(context.Context, string) ([]byte, error) { return nil, store.ErrNotFound }
func (emptyReader) Scan(context.Context, string, func(string, []byte) error) error {
	return nil
}

// importAPIDir imports api_dir's <api_id>.json files. A file is imported
// when it is new or its content changed since it was last imported; an
// unchanged file does not overwrite changes made since through the
// management API. Every file is validated first, and any problem stops
// start-up with all problems named, before anything is stored.
func importAPIDir(ctx context.Context, st store.Store, dir string, log *slog.Logger) error {
	if dir == "" {
		return nil
	}
	files, err := readAPIDir(dir)
	if err != nil {
		return err
	}
	for _, f := range files {
		// Vendor fields accepted but meaning nothing here: said once per
		// start (they are not stored).
		for _, note := range f.api.Ignored {
			log.Warn("api_dir: "+f.api.ID+".json: "+note, "api_id", f.api.ID)
		}
	}

	// One batch for all files when it fits the store's limits: either
	// every changed file is imported or none is. Checks run against the
	// store as it will be, file by file.
	view := newOverlay(st)
	var changed [][]store.Op // each changed file's operations, digest last
	imported := 0
	for _, f := range files {
		key := importPrefix + f.api.ID
		if prev, err := st.Get(ctx, key); err == nil && string(prev) == f.digest {
			continue
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		var b store.Batch
		if _, err := catalog.GetAPI(ctx, view, f.api.ID); errors.Is(err, catalog.ErrAPINotFound) {
			b, err = catalog.CreateAPI(ctx, view, f.api)
			if err != nil {
				return fmt.Errorf("api_dir: %s.json: %w", f.api.ID, err)
			}
		} else if err != nil {
			return err
		} else if b, err = catalog.UpdateAPI(ctx, view, f.api); err != nil {
			return fmt.Errorf("api_dir: %s.json: %w", f.api.ID, err)
		}
		b.Conds = nil // the overlay already checked them against this batch
		b.Ops = append(b.Ops, store.Put(key, []byte(f.digest)))
		view.apply(b.Ops)
		changed = append(changed, b.Ops)
		imported++
	}
	if imported == 0 {
		return nil
	}
	batches := packFiles(st.Limits(), changed)
	for i, batch := range batches {
		if _, err := st.Commit(ctx, batch); err != nil {
			if i > 0 {
				return fmt.Errorf("api_dir: %w (%d of %d batches of definitions were stored; the next start imports the rest)", err, i, len(batches))
			}
			return fmt.Errorf("api_dir: %w", err)
		}
	}
	log.Info("imported API definitions from api_dir", "dir", dir, "count", imported, "batches", len(batches))
	return nil
}

// packFiles groups the changed files' operations into batches within the
// store's limits, whole files only, in api_id order. Past one batch (on
// etcd, more than about 60 changed files at once) the import is no longer
// all or nothing, and that is acceptable here: each file's definition is
// stored with its digest in one batch, so a start that fails part-way has
// stored whole files, each checked against the files before it (every
// state in between is one the checks accepted), and the next start imports
// only the files not stored yet. A file too large for one batch alone is
// refused by the store (*store.TooLargeError), naming the limits.
func packFiles(lim store.Limits, files [][]store.Op) []store.Batch {
	var out []store.Batch
	var cur store.Batch
	size := 0
	for _, ops := range files {
		n := 0
		for _, op := range ops {
			n += len(op.Key) + len(op.Value)
		}
		if len(cur.Ops) > 0 && (lim.MaxOps > 0 && len(cur.Ops)+len(ops) > lim.MaxOps || lim.MaxBytes > 0 && size+n > lim.MaxBytes) {
			out = append(out, cur)
			cur, size = store.Batch{}, 0
		}
		cur.Ops = append(cur.Ops, ops...)
		size += n
	}
	return append(out, cur)
}

// overlay is a store.Reader of a store plus puts not yet committed.
type overlay struct {
	base store.Reader
	puts map[string][]byte
}

func newOverlay(base store.Reader) *overlay { return &overlay{base: base, puts: map[string][]byte{}} }

func (o *overlay) apply(ops []store.Op) {
	for _, op := range ops {
		if op.Kind == store.OpPut {
			o.puts[op.Key] = op.Value
		}
	}
}

func (o *overlay) Get(ctx context.Context, key string) ([]byte, error) {
	if v, ok := o.puts[key]; ok {
		return v, nil
	}
	return o.base.Get(ctx, key)
}

func (o *overlay) Scan(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	seen := map[string]bool{}
	err := o.base.Scan(ctx, prefix, func(k string, v []byte) error {
		if nv, ok := o.puts[k]; ok {
			v = nv
		}
		seen[k] = true
		return fn(k, v)
	})
	if err != nil {
		return err
	}
	var extra []string
	for k := range o.puts {
		if strings.HasPrefix(k, prefix) && !seen[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	for _, k := range extra {
		if err := fn(k, o.puts[k]); err != nil {
			return err
		}
	}
	return nil
}
