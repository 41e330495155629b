package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/logfile"
)

// backward returns what backLines reads from data's end, with a block of
// block bytes and lines up to maxLine: each line, or "LONG@offset".
func backward(t testing.TB, data []byte, block, maxLine int) []string {
	t.Helper()
	b := &backLines{r: bytes.NewReader(data), start: int64(len(data)), tail: true, block: block, maxLine: maxLine, budget: 1 << 62}
	var out []string
	for {
		line, at, long, err := b.prev()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if long {
			out = append(out, fmt.Sprintf("LONG@%d", at))
			continue
		}
		if got := string(data[at : at+int64(len(line))]); got != string(line) {
			t.Fatalf("line %q is said to start at %d, where the data holds %q", line, at, got)
		}
		out = append(out, string(line))
	}
	if b.read > int64(len(data)) {
		t.Fatalf("read %d bytes of %d: some twice", b.read, len(data))
	}
	if cap(b.buf) > 2*(maxLine+2*block)+2*block {
		t.Fatalf("the buffer grew to %d bytes, for lines of at most %d and blocks of %d", cap(b.buf), maxLine, block)
	}
	return out
}

// forward is what backward should read: the complete lines (those ending
// in a newline), last first, the longer than maxLine as LONG@offset.
func forward(data []byte, maxLine int) []string {
	var out []string
	var at int
	for {
		i := bytes.IndexByte(data[at:], '\n')
		if i < 0 {
			break
		}
		if i > maxLine {
			out = append(out, fmt.Sprintf("LONG@%d", at))
		} else {
			out = append(out, string(data[at:at+i]))
		}
		at += i + 1
	}
	slices.Reverse(out)
	return out
}

func TestBackLines(t *testing.T) {
	var many strings.Builder
	for i := range 500 {
		fmt.Fprintf(&many, "line %d %s\n", i, strings.Repeat("x", i%37))
	}
	long := strings.Repeat("L", 1000)
	tests := []struct {
		name    string
		data    string
		maxLine int
	}{
		{"empty", "", 100},
		{"one line", "a\n", 100},
		{"no newline at all: torn", "abc", 100},
		{"many lines across block boundaries", many.String(), 100},
		{"torn last line", many.String() + `{"time":"2026-12-01T08:00:00Z","us`, 100},
		{"empty lines", "\n\na\n\n", 100},
		{"a line longer than a block", "first\n" + long + "\nlast\n", 2000},
		{"the first line longer than a block", long + "\nlast\n", 2000},
		{"a line longer than maxLine, skipped", "first\n" + long + "\n" + many.String(), 100},
		{"the first line longer than maxLine", long + "\nlast\n", 100},
		{"a torn tail longer than maxLine", "first\nsecond\n" + long, 100},
		{"exactly maxLine", "a\n" + strings.Repeat("m", 100) + "\nb\n", 100},
	}
	for _, tt := range tests {
		for _, block := range []int{1, 2, 3, 7, 64, 4096} {
			t.Run(fmt.Sprintf("%s/block %d", tt.name, block), func(t *testing.T) {
				got := backward(t, []byte(tt.data), block, tt.maxLine)
				want := forward([]byte(tt.data), tt.maxLine)
				if !slices.Equal(got, want) {
					t.Fatalf("got %d lines %.300q\nwant %d lines %.300q", len(got), got, len(want), want)
				}
			})
		}
	}
}

// writeLog writes n entries through a real Log on a rotated logfile.File,
// alternating users and actions, and returns them as written, oldest
// first.
func writeLog(t *testing.T, path string, maxSize int64, maxFiles, n int) []Entry {
	t.Helper()
	f, err := logfile.Open(path, maxSize, maxFiles, false)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	l := New(f, time.UTC, slog.Default())
	base := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	var out []Entry
	for i := range n {
		l.now = func() time.Time { return base.Add(time.Duration(i) * time.Millisecond) }
		e := Entry{User: []string{"alice", "bob", "carol"}[i%3], Via: "rest_api", Auth: "session", Client: "127.0.0.1",
			Action: []string{"create_api", "add_server", "update_flow_control", "delete_api"}[i%4], Params: map[string]any{"n": i}, Result: "success"}
		l.Record(e)
		e.Time = l.now()
		out = append(out, e)
	}
	return out
}

// readAll pages through the log with q, returning every entry's "n" and
// the pages' sizes.
func readAll(t *testing.T, lim limits, path string, maxFiles int, q Query) (ns []int, pages []int, skipped int) {
	t.Helper()
	for range 10000 {
		p, err := lim.read(context.Background(), path, maxFiles, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, raw := range p.Entries {
			var e Entry
			if err := json.Unmarshal(raw, &e); err != nil {
				t.Fatalf("entry %s: %v", raw, err)
			}
			if q.User != "" && e.User != q.User || q.Action != "" && e.Action != q.Action {
				t.Fatalf("entry %s does not match %+v", raw, q)
			}
			ns = append(ns, int(e.Params["n"].(float64)))
		}
		pages = append(pages, len(p.Entries))
		skipped += p.Skipped
		if len(p.Entries) > q.Limit {
			t.Fatalf("a page of %d entries, limit %d", len(p.Entries), q.Limit)
		}
		if p.Next == "" {
			return ns, pages, skipped
		}
		q.Before = p.Next
	}
	t.Fatal("paging does not end")
	return
}

func wantNs(entries []Entry, keep func(Entry) bool) []int {
	var out []int
	for i := len(entries) - 1; i >= 0; i-- {
		if keep(entries[i]) {
			out = append(out, int(entries[i].Params["n"].(int)))
		}
	}
	return out
}

func TestReadPages(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	// Lines of ~190 bytes, files of at most 4 KiB: about 20 lines a
	// file, 15 files, all kept.
	entries := writeLog(t, path, 4096, 20, 300)
	if _, err := os.Stat(path + ".10"); err != nil {
		t.Fatalf("the log was not rotated enough: %v", err)
	}
	lim := limits{block: 64, maxLine: 1000, maxPage: 1 << 20, maxScan: 1 << 30}
	all := func(Entry) bool { return true }
	for _, tt := range []struct {
		name string
		q    Query
		keep func(Entry) bool
	}{
		{"everything", Query{Limit: 7}, all},
		{"one page", Query{Limit: 1000}, all},
		{"user", Query{User: "bob", Limit: 5}, func(e Entry) bool { return e.User == "bob" }},
		{"action", Query{Action: "delete_api", Limit: 9}, func(e Entry) bool { return e.Action == "delete_api" }},
		{"both", Query{User: "alice", Action: "create_api", Limit: 4}, func(e Entry) bool { return e.User == "alice" && e.Action == "create_api" }},
		{"none", Query{User: "nobody", Limit: 4}, func(e Entry) bool { return false }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, pages, skipped := readAll(t, lim, path, 20, tt.q)
			want := wantNs(entries, tt.keep)
			if !slices.Equal(got, want) {
				t.Fatalf("got %v\nwant %v", got, want)
			}
			for i, n := range pages[:len(pages)-1] {
				if n != tt.q.Limit {
					t.Fatalf("page %d has %d entries, want %d (pages %v)", i, n, tt.q.Limit, pages)
				}
			}
			if last := pages[len(pages)-1]; last == 0 && len(want) > 0 {
				t.Fatalf("the last page is empty: a next cursor was given with nothing after it (pages %v)", pages)
			}
			if skipped != 0 {
				t.Fatalf("skipped %d lines of a clean log", skipped)
			}
		})
	}

	t.Run("a small scan budget splits pages but loses nothing", func(t *testing.T) {
		small := lim
		small.maxScan = 1500
		got, pages, _ := readAll(t, small, path, 20, Query{User: "carol", Action: "add_server", Limit: 50})
		want := wantNs(entries, func(e Entry) bool { return e.User == "carol" && e.Action == "add_server" })
		if !slices.Equal(got, want) || len(pages) < 10 {
			t.Fatalf("got %v in %d pages\nwant %v", got, len(pages), want)
		}
	})
	t.Run("a page's byte limit", func(t *testing.T) {
		small := lim
		small.maxPage = 500 // two or three entries
		got, pages, _ := readAll(t, small, path, 20, Query{Limit: 100})
		if want := wantNs(entries, all); !slices.Equal(got, want) || slices.Max(pages) > 3 {
			t.Fatalf("got %v in pages %v\nwant %v", got, pages, want)
		}
	})
	t.Run("a malformed cursor", func(t *testing.T) {
		for _, c := range []string{"x", "0123456789abcdef", "0123456789abcdef-", "0123456789ABCDEF-1", "0123456789abcdef-01", "0123456789abcdef--1", "../../etc/passwd-1"} {
			if _, err := lim.read(context.Background(), path, 20, Query{Limit: 1, Before: c}); !errors.Is(err, ErrCursor) {
				t.Errorf("cursor %q: got %v, want ErrCursor", c, err)
			}
		}
	})
}

// A cursor survives rotations: paging goes on where it was, without
// repeating or missing an entry, until its file is deleted.
func TestReadAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	lim := limits{block: 64, maxLine: 1000, maxPage: 1 << 20, maxScan: 1 << 30}
	first := writeLog(t, path, 4096, 5, 30)
	p, err := lim.read(context.Background(), path, 5, Query{Limit: 10})
	if err != nil || p.Next == "" {
		t.Fatalf("got %v, %v", p, err)
	}
	// Enough new entries to rotate the file the cursor is in once (to
	// .1 or .2), not out of the kept five.
	writeLog(t, path, 4096, 5, 25)
	got, _, _ := readAll(t, lim, path, 5, Query{Limit: 10, Before: p.Next})
	want := wantNs(first, func(Entry) bool { return true })[10:]
	if !slices.Equal(got, want) {
		t.Fatalf("after the rotation, got %v\nwant %v", got, want)
	}
	// Far more: the cursor's file is deleted.
	writeLog(t, path, 4096, 5, 400)
	if _, err := lim.read(context.Background(), path, 5, Query{Limit: 10, Before: p.Next}); !errors.Is(err, ErrGone) {
		t.Fatalf("got %v, want ErrGone", err)
	}
}

func TestReadSkipsDamagedLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	good := func(n int) string {
		return fmt.Sprintf(`{"time":"2026-12-01T08:00:00.%09dZ","user":"u","via":"cli","auth":"session","client":"127.0.0.1","action":"create_api","params":{"n":%d},"result":"success"}`, n, n)
	}
	content := strings.Join([]string{
		good(0),
		`{"time":"2026-12-01T08:00:01Z","user":"u","act` + good(1), // torn by a crash, then appended to
		"not json",
		`["an array"]`,
		`{"time":"2026-12-01T08:00:02Z","user":"u"}`, // no action
		`{"user":"u","action":"x"}`,                  // no time
		`{"time":"yesterday","action":"x"}`,
		`{"time":"2026-12-01T08:00:02Z","user":5,"action":"x"}`,
		`{"time":"2026-12-01T08:00:02Z","action":"x"} trailing`,
		`{"time":"2026-12-01T08:00:03Z","action":"` + strings.Repeat("y", 2000) + `"}`, // longer than maxLine
		good(2),
		"",
	}, "\n") + `{"time":"2026-12-01T08:00:04Z","user":"u","action":"being written`
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	lim := limits{block: 64, maxLine: 1000, maxPage: 1 << 20, maxScan: 1 << 30}
	got, _, skipped := readAll(t, lim, path, 3, Query{Limit: 100})
	if !slices.Equal(got, []int{2, 0}) || skipped != 9 {
		t.Fatalf("got entries %v, %d skipped; want [2 0], 9 skipped", got, skipped)
	}
}

func TestReadMissingFile(t *testing.T) {
	p, err := Read(context.Background(), filepath.Join(t.TempDir(), "audit.log"), 10, Query{Limit: 10})
	if err != nil || len(p.Entries) != 0 || p.Next != "" {
		t.Fatalf("got %+v, %v; want an empty page", p, err)
	}
}

func FuzzCursor(f *testing.F) {
	for _, s := range []string{"0123456789abcdef-0", "0123456789abcdef-4611686018427387904", "0123456789abcdef-00", "0123456789abcdef-+1", "-1", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseCursor(s)
		if err != nil {
			if !errors.Is(err, ErrCursor) {
				t.Fatalf("parseCursor(%q): %v", s, err)
			}
			return
		}
		if c.offset < 0 || c.offset > maxCursorOffset {
			t.Fatalf("parseCursor(%q) = offset %d", s, c.offset)
		}
		if c.String() != s {
			t.Fatalf("parseCursor(%q).String() = %q: two spellings of one cursor", s, c.String())
		}
	})
}

// FuzzBackLines: reading backwards in blocks finds the lines reading
// forwards finds, whatever the data, block and line limit.
func FuzzBackLines(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), uint8(1), uint8(2))
	f.Add([]byte("\n\n\n"), uint8(2), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, block, maxLine uint8) {
		got := backward(t, data, int(block)%16+1, int(maxLine))
		if want := forward(data, int(maxLine)); !slices.Equal(got, want) {
			t.Fatalf("got %q\nwant %q", got, want)
		}
	})
}
