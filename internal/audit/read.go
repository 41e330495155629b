package audit

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Reading the log back (GET /audit): newest first, from the end of the
// file backwards in blocks, so that a log of gigabytes costs a page's
// worth of memory and time, never the whole file's.

// Query selects a page of entries.
type Query struct {
	User   string // only this user's entries; "" for everyone's
	Action string // only this action's; "" for all
	Limit  int    // at most this many entries (at least 1)
	Before string // a Page.Next: the entries older than it; "" for the newest
}

// Page is a page of entries, newest first.
type Page struct {
	// Entries are the log's lines as written: each an object with the
	// fields of Entry.
	Entries []json.RawMessage `json:"entries"`
	// Next is the cursor of the following (older) page; absent when no
	// older line remains.
	Next string `json:"next,omitempty"`
	// Skipped counts the lines examined that are not entries: damaged
	// (a write cut by a crash), or longer than MaxLine.
	Skipped int `json:"skipped"`
}

// Limits of one reading. A page holds fewer than Query.Limit entries when
// the entries would take more than MaxPageBytes, or when scanning
// MaxScanBytes found fewer matches: Next then continues from there.
const (
	MaxLine      = 8 << 20  // longer lines are skipped (an entry is at most a 1 MiB request's parameters, escaped)
	MaxPageBytes = 4 << 20  // entries' bytes in one page (at least one entry)
	MaxScanBytes = 64 << 20 // bytes read from disk for one page
	blockSize    = 64 << 10
)

// Errors of Read.
var (
	// ErrCursor means Query.Before is not a cursor Read gave.
	ErrCursor = errors.New("not a cursor of the audit log")
	// ErrGone means the cursor's file has been rotated away
	// (log_max_files): its entries are no longer kept.
	ErrGone = errors.New("the audit log file of this cursor is no longer kept (rotated away): start again from the newest entries")
)

// limits bound one reading; tests shrink them.
type limits struct {
	block, maxLine, maxPage int
	maxScan                 int64
}

var defaultLimits = limits{block: blockSize, maxLine: MaxLine, maxPage: MaxPageBytes, maxScan: MaxScanBytes}

// Read returns a page of the audit log at path, the file a logfile.File
// writes, continuing into its rotated files path.1 to path.maxFiles.
func Read(ctx context.Context, path string, maxFiles int, q Query) (Page, error) {
	return defaultLimits.read(ctx, path, maxFiles, q)
}

// A cursor is a position in one file of the log: the entries older than
// it are those of the complete lines before offset. The file is named by
// a digest of its first line, which never changes once written (the file
// is only appended to, then renamed by rotation), so a cursor still finds
// its file after a rotation renamed it.
type cursor struct {
	file   [8]byte
	offset int64
}

const maxCursorOffset = 1 << 62

// String is the cursor as the API shows it: 16 hex digits, '-', the
// offset in decimal.
func (c cursor) String() string {
	return hex.EncodeToString(c.file[:]) + "-" + strconv.FormatInt(c.offset, 10)
}

// parseCursor parses String's form, and only that (one spelling per
// cursor).
func parseCursor(s string) (cursor, error) {
	var c cursor
	id, off, ok := cutByte(s, '-')
	if !ok || len(id) != 16 || len(off) == 0 || len(off) > 19 || (off[0] == '0' && len(off) > 1) {
		return c, ErrCursor
	}
	for i := 0; i < len(id); i++ {
		if !('0' <= id[i] && id[i] <= '9' || 'a' <= id[i] && id[i] <= 'f') {
			return c, ErrCursor
		}
	}
	for i := 0; i < len(off); i++ {
		if off[i] < '0' || off[i] > '9' {
			return c, ErrCursor
		}
	}
	n, err := strconv.ParseInt(off, 10, 64)
	if err != nil || n > maxCursorOffset {
		return c, ErrCursor
	}
	hex.Decode(c.file[:], []byte(id))
	c.offset = n
	return c, nil
}

func cutByte(s string, b byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == b {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

// fileID names a log file by its first line (at most its first 4 KiB).
func fileID(f io.ReaderAt) ([8]byte, error) {
	var id [8]byte
	buf := make([]byte, 4096)
	n, err := f.ReadAt(buf, 0)
	if err != nil && err != io.EOF {
		return id, err
	}
	buf = buf[:n]
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i]
	}
	sum := sha256.Sum256(buf)
	copy(id[:], sum[:])
	return id, nil
}

// head is what a line must hold to be an entry, and what filters read.
type head struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Action string    `json:"action"`
}

// parseLine reads a line as an entry: a JSON object with a time and an
// action.
func parseLine(line []byte) (head, bool) {
	var h head
	if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &h) != nil || h.Time.IsZero() || h.Action == "" {
		return head{}, false
	}
	return h, true
}

// logFile is one file of the log, open.
type logFile struct {
	f    *os.File
	id   [8]byte
	size int64
}

func openLog(name string) (*logFile, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	id, err := fileID(f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return &logFile{f: f, id: id, size: st.Size()}, nil
}

func fileName(path string, i int) string {
	if i == 0 {
		return path
	}
	return path + "." + strconv.Itoa(i)
}

// find returns the index (0 for path, i for path.i) of the file whose ID
// is id, or -1.
func find(path string, maxFiles int, id [8]byte) (int, *logFile, error) {
	for i := 0; i <= maxFiles; i++ {
		lf, err := openLog(fileName(path, i))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return -1, nil, err
		}
		if lf.id == id {
			return i, lf, nil
		}
		lf.f.Close()
	}
	return -1, nil, nil
}

func (lim limits) read(ctx context.Context, path string, maxFiles int, q Query) (Page, error) {
	page := Page{Entries: []json.RawMessage{}}
	limit := max(q.Limit, 1)
	index, start := 0, int64(-1) // -1: the end of the file
	var first *logFile
	if q.Before != "" {
		c, err := parseCursor(q.Before)
		if err != nil {
			return page, err
		}
		i, lf, err := find(path, maxFiles, c.file)
		if err == nil && lf == nil {
			// A rotation may have been renaming the files: look again.
			i, lf, err = find(path, maxFiles, c.file)
		}
		if err != nil {
			return page, err
		}
		if lf == nil {
			return page, ErrGone
		}
		index, start, first = i, min(c.offset, lf.size), lf
	}
	var scanned int64
	pageBytes := 0
	seen := map[[8]byte]bool{} // a file renamed by a rotation while this reads is read once
	for ; index <= maxFiles; index++ {
		lf := first
		first = nil
		if lf == nil {
			var err error
			lf, err = openLog(fileName(path, index))
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return page, err
			}
		}
		if seen[lf.id] {
			lf.f.Close()
			continue
		}
		seen[lf.id] = true
		end := lf.size
		if start >= 0 {
			end, start = start, -1
		}
		next, err := lim.scan(ctx, lf, end, lim.maxScan-scanned, q, limit, &page, &pageBytes, &scanned)
		lf.f.Close()
		if err != nil || next != "" {
			page.Next = next
			return page, err
		}
	}
	return page, nil
}

// scan reads one file backwards from end into page, reading at most
// budget bytes. It returns the next page's cursor when it stopped before
// the file's start.
func (lim limits) scan(ctx context.Context, lf *logFile, end, budget int64, q Query, limit int, page *Page, pageBytes *int, scanned *int64) (string, error) {
	lines := &backLines{r: lf.f, start: end, tail: true, block: lim.block, maxLine: lim.maxLine, budget: budget}
	defer func() { *scanned += lines.read }()
	pos := end // where the lines not yet read end
	for {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		line, at, long, err := lines.prev()
		switch {
		case err == errBudget && lines.long:
			// A line longer than a page may read: the next page goes on
			// from inside it, and drops the rest of it.
			if !lines.tail {
				page.Skipped++
			}
			return cursor{file: lf.id, offset: lines.start}.String(), nil
		case err == errBudget:
			// This page has read its share of the disk: the next one goes
			// on from here.
			return cursor{file: lf.id, offset: pos}.String(), nil
		case err == io.EOF:
			return "", nil
		case err != nil:
			return "", err
		}
		lineEnd := pos
		pos = at
		if long {
			page.Skipped++
			continue
		}
		h, ok := parseLine(line)
		if !ok {
			page.Skipped++
			continue
		}
		if q.User != "" && h.User != q.User || q.Action != "" && h.Action != q.Action {
			continue
		}
		if len(page.Entries) == limit || len(page.Entries) > 0 && *pageBytes+len(line) > lim.maxPage {
			// One more match: the next page starts with it.
			return cursor{file: lf.id, offset: lineEnd}.String(), nil
		}
		page.Entries = append(page.Entries, json.RawMessage(bytes.Clone(line)))
		*pageBytes += len(line)
	}
}

// errBudget means a reading has read all it may.
var errBudget = errors.New("audit log: the page's reading budget is spent")

// backLines reads a file's lines backwards from an offset, a block at a
// time. It holds at most a line (up to maxLine) and a block: a longer
// line is skipped without being held. The bytes after the last newline
// before the offset (the tail) are dropped: a line being written, or torn
// by a crash.
type backLines struct {
	r       io.ReaderAt
	block   int
	maxLine int
	// start is the file offset of data's first byte; data is what lies
	// before the lines returned so far, held at the end of buf.
	start int64
	buf   []byte
	off   int // data is buf[off:]
	tail  bool
	long  bool // the line being gathered is longer than maxLine: dropped
	done  bool
	// read counts the bytes read from r; past budget, prev returns
	// errBudget instead of reading more.
	read, budget int64
}

// prev returns the line before the last one returned (without its
// newline), and the offset where it starts; long when it was longer than
// maxLine (line is then nil). At the start of the file it returns io.EOF.
// line is valid until the next call.
func (b *backLines) prev() (line []byte, at int64, long bool, err error) {
	for {
		data := b.buf[b.off:]
		if i := bytes.LastIndexByte(data, '\n'); i >= 0 || b.start == 0 && !b.done {
			var seg []byte
			var segStart int64
			if i >= 0 {
				seg, segStart = data[i+1:], b.start+int64(i)+1
				b.buf = b.buf[:b.off+i] // the newline goes too
			} else {
				// The first line of the file.
				seg, segStart = data, 0
				b.buf, b.done = b.buf[:b.off], true
			}
			long, tail := b.long || len(seg) > b.maxLine, b.tail
			b.long, b.tail = false, false
			if tail {
				continue
			}
			if long {
				return nil, segStart, true, nil
			}
			return seg, segStart, false, nil
		}
		if b.start == 0 {
			return nil, 0, false, io.EOF
		}
		if len(data) > b.maxLine {
			// Too long to hold: forget it and look for where it starts.
			b.long = true
			b.buf = b.buf[:b.off]
		}
		if b.read >= b.budget {
			return nil, 0, false, errBudget
		}
		n := int64(b.block)
		if n > b.start {
			n = b.start
		}
		b.grow(int(n))
		b.off -= int(n)
		if _, err := b.r.ReadAt(b.buf[b.off:b.off+int(n)], b.start-n); err != nil {
			if err == io.EOF {
				err = fmt.Errorf("audit log: the file shrank while being read: %w", io.ErrUnexpectedEOF)
			}
			return nil, 0, false, err
		}
		b.start -= n
		b.read += n
	}
}

// grow makes room for n more bytes before data, moving data to the end
// of its array (or of a larger one).
func (b *backLines) grow(n int) {
	if b.off >= n {
		return
	}
	data := b.buf[b.off:]
	nb := b.buf[:cap(b.buf)]
	if need := len(data) + n; need > len(nb) {
		nb = make([]byte, max(2*need, 2*b.block))
	}
	off := len(nb) - len(data)
	copy(nb[off:], data)
	b.buf, b.off = nb, off
}
