// Package powercut tells what a power cut would leave on disk. A process
// runs under strace (Command); Parse reads the log of its file system
// calls, and File replays them up to any moment of the log, keeping only
// what a sync made durable: a file's writes survive once an fsync or
// fdatasync of it that began after them has returned, and a file or
// directory the process created exists only once its parent directory
// was fsynced after the creation. The page cache survives a kill -9; this
// is the test for what it does not.
//
// It models what a Go program on Linux calls (openat, mkdirat, pwrite64,
// ftruncate, fsync, fdatasync); any other call that changes the file
// replayed is reported, never guessed at.
package powercut

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// traced are the system calls Command logs: every way a Go program
// writes, creates, renames, removes or syncs a file, and the writes on
// other descriptors (sockets, pipes) that mark moments to cut at.
var traced = []string{
	"open", "openat", "creat", "mkdir", "mkdirat",
	"write", "writev", "pwrite64", "pwritev", "pwritev2", "sendto", "sendmsg",
	"truncate", "ftruncate", "fallocate", "copy_file_range",
	"rename", "renameat", "renameat2", "link", "linkat", "unlink", "unlinkat", "rmdir",
	"fsync", "fdatasync", "sync", "syncfs",
}

// Command returns the command running name with args under strace (at
// path strace), logging to logPath what Parse reads: every thread, every
// string whole and in hex, descriptors with their paths and sockets'
// addresses.
func Command(strace, logPath, name string, args ...string) *exec.Cmd {
	a := []string{"-f", "--seccomp-bpf", "-qq", "-e", "signal=none", "-xx", "-yy", "-s", "16777216",
		"-e", "trace=" + strings.Join(traced, ","), "-o", logPath, "--", name}
	return exec.Command(strace, append(a, args...)...)
}

// Strace returns the path of strace; when it is missing, it runs deps
// (the project's scripts/deps.sh, which installs it) and looks again.
func Strace(deps string) (string, error) {
	if p, err := exec.LookPath("strace"); err == nil {
		return p, nil
	}
	cmd := exec.Command(deps)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("strace is missing and %s failed: %w", deps, err)
	}
	p, err := exec.LookPath("strace")
	if err != nil {
		return "", fmt.Errorf("strace is still missing after %s: %w", deps, err)
	}
	return p, nil
}

// Call is one logged system call. Entry and Exit are the positions in the
// log (its line numbers) where the call began and where it returned; a
// call that never returned (the process was killed in it) has Exit -1.
type Call struct {
	Entry, Exit int
	PID         int
	Name        string
	Args        []string // as logged, strings and paths still escaped
	Ret         string   // "0", "-1 ENOENT (No such file or directory)", "5</a/b>", "?"
}

// Log is a parsed strace log.
type Log struct {
	Calls []Call
}

// Parse reads a log written by Command.
func Parse(r io.Reader) (*Log, error) {
	l := &Log{}
	open := map[string]int{} // "pid name" -> index of the unfinished call
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<27)
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		pidText, rest, _ := strings.Cut(line, " ")
		pid, err := strconv.Atoi(pidText)
		if err != nil {
			return nil, fmt.Errorf("line %d: no pid: %.80q", n+1, line)
		}
		rest = strings.TrimLeft(rest, " ")
		if strings.HasPrefix(rest, "+++") || strings.HasPrefix(rest, "---") {
			continue
		}
		if after, ok := strings.CutPrefix(rest, "<... "); ok {
			name, tail, ok := strings.Cut(after, " resumed>")
			key := pidText + " " + name
			i, found := open[key]
			if !ok || !found {
				return nil, fmt.Errorf("line %d: a resumption of no unfinished call: %.80q", n+1, line)
			}
			delete(open, key)
			c := &l.Calls[i]
			// The process ended (or strace let go of it) before the call
			// returned: " <detached ...>", " <unfinished ...>) = ?".
			tail = strings.Replace(tail, " <unfinished ...>", "", 1)
			if strings.HasPrefix(strings.TrimSpace(tail), "<detached") {
				tail = ") = ?"
			}
			if err := c.finish(c.Args[0]+tail, n); err != nil {
				return nil, fmt.Errorf("line %d: %v", n+1, err)
			}
			continue
		}
		name, args, ok := strings.Cut(rest, "(")
		if !ok {
			return nil, fmt.Errorf("line %d: not a call: %.80q", n+1, line)
		}
		c := Call{Entry: n, Exit: -1, PID: pid, Name: name}
		// A thread still in a call as the process ends: "???( <detached
		// ...>" (a call strace does not trace), "fsync(3</a> <detached
		// ...>". It never returned.
		if head, ok := strings.CutSuffix(args, " <detached ...>"); ok {
			if name == "???" {
				continue
			}
			if c.Args, _, err = splitArgs(head + ")"); err != nil {
				return nil, fmt.Errorf("line %d: %v", n+1, err)
			}
			c.Ret = "?"
			l.Calls = append(l.Calls, c)
			continue
		}
		if head, ok := strings.CutSuffix(args, " <unfinished ...>"); ok {
			c.Args = []string{head} // the text so far, split when it resumes
			open[pidText+" "+name] = len(l.Calls)
			l.Calls = append(l.Calls, c)
			continue
		}
		if err := c.finish(args, n); err != nil {
			return nil, fmt.Errorf("line %d: %v", n+1, err)
		}
		l.Calls = append(l.Calls, c)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	// Calls still open when the process died never returned.
	for _, i := range open {
		c := &l.Calls[i]
		args, _, err := splitArgs(c.Args[0] + ")")
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", c.Entry+1, err)
		}
		c.Args, c.Ret = args, "?"
	}
	return l, nil
}

// finish splits a call's text after "name(" into its arguments and its
// result, logged at line n.
func (c *Call) finish(text string, n int) error {
	args, rest, err := splitArgs(text)
	if err != nil {
		return err
	}
	ret, ok := strings.CutPrefix(strings.TrimLeft(rest, " "), "= ")
	if !ok {
		return fmt.Errorf("%s: no result in %.80q", c.Name, rest)
	}
	c.Args, c.Ret = args, ret
	if ret != "?" {
		c.Exit = n
	}
	return nil
}

// splitArgs splits "a, b, [c, d])..." at its top-level commas up to the
// closing parenthesis, returning the arguments and what follows it.
// Descriptors' annotations are not brackets to it: "<TCP:[a->b]>" holds a
// lone '>', and with -xx none holds a comma or a parenthesis.
func splitArgs(s string) (args []string, rest string, err error) {
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '"':
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, "", fmt.Errorf("unterminated string in %.80q", s)
			}
			if strings.HasPrefix(s[j+1:], "...") {
				return nil, "", errors.New("a string was cut short: raise strace's -s")
			}
			i = j
		case '(', '[', '{':
			depth++
		case ']', '}':
			depth--
		case ')':
			if depth == 0 {
				if arg := strings.TrimSpace(s[start:i]); arg != "" || len(args) > 0 {
					args = append(args, arg)
				}
				return args, s[i+1:], nil
			}
			depth--
		case ',':
			if depth == 0 {
				args = append(args, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return nil, "", fmt.Errorf("no closing parenthesis in %.80q", s)
}

// unescape decodes strace's escapes (\xHH with -xx, and the C ones).
func unescape(s string) ([]byte, error) {
	var b []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b = append(b, s[i])
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("bad escape in %.80q", s)
		}
		i++
		switch s[i] {
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("bad escape in %.80q", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad escape in %.80q", s)
			}
			b = append(b, byte(v))
			i += 2
		case 'n':
			b = append(b, '\n')
		case 't':
			b = append(b, '\t')
		case 'r':
			b = append(b, '\r')
		case 'v':
			b = append(b, '\v')
		case 'f':
			b = append(b, '\f')
		default:
			b = append(b, s[i])
		}
	}
	return b, nil
}

// Str decodes a quoted string argument.
func Str(arg string) ([]byte, error) {
	if len(arg) < 2 || arg[0] != '"' || arg[len(arg)-1] != '"' {
		return nil, fmt.Errorf("not a string: %.80q", arg)
	}
	return unescape(arg[1 : len(arg)-1])
}

// FD splits a descriptor as -yy logs it, "5</a/b>" or
// "9<TCP:[127.0.0.1:80->127.0.0.1:5000]>" or "AT_FDCWD</a>", into its
// number (-100 for AT_FDCWD) and what it refers to.
func FD(arg string) (int, string, error) {
	num, target, ok := strings.Cut(arg, "<")
	if !ok || !strings.HasSuffix(target, ">") {
		return 0, "", fmt.Errorf("not an annotated descriptor: %.80q", arg)
	}
	t, err := unescape(target[:len(target)-1])
	if err != nil {
		return 0, "", err
	}
	if num == "AT_FDCWD" {
		return -100, string(t), nil
	}
	n, err := strconv.Atoi(num)
	if err != nil {
		return 0, "", fmt.Errorf("not an annotated descriptor: %.80q", arg)
	}
	return n, string(t), nil
}

// ok reports whether the call returned without an error.
func (c *Call) ok() bool { return c.Exit >= 0 && !strings.HasPrefix(c.Ret, "-1") }

// Write is data the process wrote to a descriptor.
type Write struct {
	Call   *Call
	FD     int
	Target string // the descriptor's path or socket, as FD returns it
	Data   []byte // all of it, whether or not the call wrote it all
}

// Writes returns the data of every write, writev, sendto and sendmsg, in
// the order the calls began: the moments a test cuts power at (just
// before an acknowledgement leaves) are among them.
func (l *Log) Writes() ([]Write, error) {
	var out []Write
	for i := range l.Calls {
		c := &l.Calls[i]
		switch c.Name {
		case "write", "writev", "sendto", "sendmsg":
		default:
			continue
		}
		if len(c.Args) < 2 {
			return nil, fmt.Errorf("line %d: %s with %d arguments", c.Entry+1, c.Name, len(c.Args))
		}
		fd, target, err := FD(c.Args[0])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", c.Entry+1, err)
		}
		data, err := strings2(c.Args[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %v", c.Entry+1, err)
		}
		out = append(out, Write{Call: c, FD: fd, Target: target, Data: data})
	}
	return out, nil
}

// strings2 decodes every quoted string in arg, in order: one for write,
// the iovecs' for writev and sendmsg.
func strings2(arg string) ([]byte, error) {
	var out []byte
	for {
		i := strings.IndexByte(arg, '"')
		if i < 0 {
			return out, nil
		}
		j := i + 1
		for ; j < len(arg) && arg[j] != '"'; j++ {
			if arg[j] == '\\' {
				j++
			}
		}
		if j >= len(arg) {
			return nil, fmt.Errorf("unterminated string in %.80q", arg)
		}
		b, err := unescape(arg[i+1 : j])
		if err != nil {
			return nil, err
		}
		out = append(out, b...)
		arg = arg[j+1:]
	}
}

// fileOp is a change to the file File replays, or a sync of it.
type fileOp struct {
	call *Call
	kind int // opWrite, opTruncate, opSync
	data []byte
	off  int64 // opWrite: where; opTruncate: the new size
}

const (
	opWrite = iota
	opTruncate
	opSync
	opAppend // a write(2) to a file opened O_APPEND: at its end
)

// File returns the content path would have after a power cut at line cut
// of the log (calls that began and returned before it have happened;
// those that returned after it have not), and whether it would exist at
// all. The process must have created path, and any directory above it
// that it made, in the log; directories it did not make are taken to be
// durable.
func (l *Log) File(path string, cut int) (data []byte, exists bool, err error) {
	path = filepath.Clean(path)
	above := map[string]bool{} // path's ancestors
	for d := filepath.Dir(path); !above[d]; d = filepath.Dir(d) {
		above[d] = true
	}
	var ops []fileOp
	appending := false               // the last open of path was O_APPEND
	created := map[string]*Call{}    // path and the ancestors the process made
	dirSyncs := map[string][]*Call{} // an ancestor -> its fsyncs
	var syncAll []*Call
	for i := range l.Calls {
		c := &l.Calls[i]
		if !c.ok() {
			continue
		}
		if c.Name == "sync" || c.Name == "syncfs" {
			syncAll = append(syncAll, c)
			continue
		}
		touched, err := c.paths()
		if err != nil {
			return nil, false, fmt.Errorf("line %d: %s: %v", c.Entry+1, c.Name, err)
		}
		if len(touched) == 0 {
			continue
		}
		p := touched[0]
		switch c.Name {
		case "fsync", "fdatasync":
			if p == path {
				ops = append(ops, fileOp{call: c, kind: opSync})
			} else if above[p] {
				dirSyncs[p] = append(dirSyncs[p], c)
			}
			continue
		case "open", "openat", "creat":
			if p != path {
				continue // reading, or opening a directory to sync it
			}
			flags := c.argOr(1)
			if c.Name == "openat" {
				flags = c.argOr(2)
			}
			if created[path] == nil && (c.Name == "creat" || strings.Contains(flags, "O_CREAT")) {
				created[path] = c
			}
			if c.Name == "creat" || strings.Contains(flags, "O_TRUNC") {
				ops = append(ops, fileOp{call: c, kind: opTruncate})
			}
			appending = strings.Contains(flags, "O_APPEND")
			continue
		case "write":
			if p != path {
				continue
			}
			if !appending {
				// A write at the file offset: where it lands is not
				// tracked.
				return nil, false, fmt.Errorf("line %d: write on %s (not opened O_APPEND) is not modelled", c.Entry+1, p)
			}
			b, err := Str(c.argOr(1))
			if err != nil {
				return nil, false, fmt.Errorf("line %d: %v", c.Entry+1, err)
			}
			n, err := strconv.Atoi(c.Ret)
			if err != nil || n < 0 || n > len(b) {
				return nil, false, fmt.Errorf("line %d: result %q", c.Entry+1, c.Ret)
			}
			ops = append(ops, fileOp{call: c, kind: opAppend, data: b[:n]})
			continue
		case "mkdir", "mkdirat":
			if above[p] && created[p] == nil {
				created[p] = c
			}
			continue
		case "pwrite64":
			if p != path {
				continue
			}
			b, err := Str(c.argOr(1))
			if err != nil {
				return nil, false, fmt.Errorf("line %d: %v", c.Entry+1, err)
			}
			n, err := strconv.Atoi(c.Ret)
			if err != nil || n < 0 || n > len(b) {
				return nil, false, fmt.Errorf("line %d: result %q", c.Entry+1, c.Ret)
			}
			off, err := strconv.ParseInt(c.argOr(3), 10, 64)
			if err != nil || off < 0 {
				return nil, false, fmt.Errorf("line %d: offset %q", c.Entry+1, c.argOr(3))
			}
			ops = append(ops, fileOp{call: c, kind: opWrite, data: b[:n], off: off})
			continue
		case "ftruncate":
			if p != path {
				continue
			}
			size, err := strconv.ParseInt(c.argOr(1), 10, 64)
			if err != nil || size < 0 {
				return nil, false, fmt.Errorf("line %d: size %q", c.Entry+1, c.argOr(1))
			}
			ops = append(ops, fileOp{call: c, kind: opTruncate, off: size})
			continue
		}
		// Anything else on the file (a write at the file offset, a
		// rename, a removal...) or on a directory above it.
		for _, p := range touched {
			if p == path || above[p] {
				return nil, false, fmt.Errorf("line %d: %s on %s is not modelled", c.Entry+1, c.Name, p)
			}
		}
	}
	if created[path] == nil {
		return nil, false, fmt.Errorf("the log never creates %s", path)
	}

	// Every entry the process made on the way to path must have been
	// synced into its directory.
	for p, c := range created {
		if c.Exit >= cut || !synced(c, append(dirSyncs[filepath.Dir(p)], syncAll...), cut) {
			return nil, false, nil
		}
	}
	// The content: the changes that returned before the start of the
	// last sync that returned before the cut, in the order they returned.
	upTo := -1
	for _, op := range ops {
		if op.kind == opSync && op.call.Exit < cut {
			upTo = max(upTo, op.call.Entry)
		}
	}
	for _, c := range syncAll {
		if c.Exit < cut {
			upTo = max(upTo, c.Entry)
		}
	}
	var done []fileOp
	for _, op := range ops {
		if op.kind != opSync && op.call.Exit < upTo {
			done = append(done, op)
		}
	}
	sort.SliceStable(done, func(i, j int) bool { return done[i].call.Exit < done[j].call.Exit })
	data = []byte{}
	for _, op := range done {
		if op.kind == opAppend {
			op.kind, op.off = opWrite, int64(len(data))
		}
		end := op.off
		if op.kind == opWrite {
			end += int64(len(op.data))
		}
		if end > int64(len(data)) {
			data = append(data, make([]byte, end-int64(len(data)))...)
		}
		switch op.kind {
		case opWrite:
			copy(data[op.off:], op.data)
		case opTruncate:
			data = data[:op.off]
		}
	}
	return data, true, nil
}

// synced reports whether one of syncs began after c returned and itself
// returned before the cut.
func synced(c *Call, syncs []*Call, cut int) bool {
	for _, s := range syncs {
		if s.Entry > c.Exit && s.Exit < cut {
			return true
		}
	}
	return false
}

func (c *Call) argOr(i int) string {
	if i < len(c.Args) {
		return c.Args[i]
	}
	return ""
}

// paths returns the paths a call names or works on, cleaned.
func (c *Call) paths() ([]string, error) {
	fdPath := func(arg string) (string, error) {
		_, t, err := FD(arg)
		return filepath.Clean(t), err
	}
	// at resolves a path argument against a directory descriptor.
	at := func(dirArg, pathArg string) (string, error) {
		p, err := Str(pathArg)
		if err != nil {
			return "", err
		}
		if filepath.IsAbs(string(p)) {
			return filepath.Clean(string(p)), nil
		}
		d, err := fdPath(dirArg)
		return filepath.Join(d, string(p)), err
	}
	switch c.Name {
	case "openat":
		// The result names the file opened, whatever the path said.
		p, err := fdPath(c.Ret)
		return []string{p}, err
	case "open", "creat", "mkdir", "truncate", "unlink", "rmdir":
		p, err := Str(c.argOr(0))
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(string(p)) {
			return nil, fmt.Errorf("a relative path %q: not modelled", p)
		}
		return []string{filepath.Clean(string(p))}, nil
	case "mkdirat", "unlinkat":
		p, err := at(c.argOr(0), c.argOr(1))
		return []string{p}, err
	case "rename", "link":
		a, err := Str(c.argOr(0))
		if err != nil {
			return nil, err
		}
		b, err := Str(c.argOr(1))
		if err != nil {
			return nil, err
		}
		if !filepath.IsAbs(string(a)) || !filepath.IsAbs(string(b)) {
			return nil, errors.New("a relative path: not modelled")
		}
		return []string{filepath.Clean(string(a)), filepath.Clean(string(b))}, nil
	case "renameat", "renameat2", "linkat":
		a, err := at(c.argOr(0), c.argOr(1))
		if err != nil {
			return nil, err
		}
		b, err := at(c.argOr(2), c.argOr(3))
		return []string{a, b}, err
	case "sync":
		return nil, nil
	case "copy_file_range":
		a, err := fdPath(c.argOr(0))
		if err != nil {
			return nil, err
		}
		b, err := fdPath(c.argOr(2))
		return []string{a, b}, err
	default: // the first argument is the descriptor worked on
		p, err := fdPath(c.argOr(0))
		return []string{p}, err
	}
}

// ParseFile parses the strace log at path (see Parse).
func ParseFile(path string) (*Log, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f)
}

// Acks returns where each write beginning with prefix began (its Call's
// Entry), in order: a traced process's acknowledgements on its stdout.
func (l *Log) Acks(prefix string) ([]int, error) {
	ws, err := l.Writes()
	if err != nil {
		return nil, err
	}
	var at []int
	for _, w := range ws {
		if bytes.HasPrefix(w.Data, []byte(prefix)) {
			at = append(at, w.Call.Entry)
		}
	}
	return at, nil
}
