package admin

import (
	"net/http"
	"time"
)

// WriteStall is how long the management API waits for a client to take
// what it is sent: each write of an answer may take this long.
const WriteStall = 60 * time.Second

// WriteDeadlines makes the management server's write timeout bound each
// write of an answer instead of the time since the request was read. With
// http.Server's WriteTimeout alone the deadline runs while the handler
// works: a bulk import that took longer than the timeout (100,000 entries
// into an etcd cluster on a loaded machine) was done but its answer was
// never sent, the client reading EOF and left to guess. Now the clock
// starts when the answer does, and restarts with each write (as nginx's
// send_timeout), so a long export streams as long as the client reads.
// The server's ReadTimeout still bounds reading the request.
func WriteDeadlines(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w)}, r)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc *http.ResponseController
}

func (d *deadlineWriter) extend() {
	// An error means the writer has no deadlines (a test recorder): the
	// server's own WriteTimeout then stands.
	_ = d.rc.SetWriteDeadline(time.Now().Add(WriteStall))
}

func (d *deadlineWriter) WriteHeader(code int) {
	d.extend()
	d.ResponseWriter.WriteHeader(code)
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.extend()
	return d.ResponseWriter.Write(b)
}

func (d *deadlineWriter) Flush() {
	d.extend()
	_ = d.rc.Flush()
}

// Unwrap lets http.ResponseController reach the server's writer.
func (d *deadlineWriter) Unwrap() http.ResponseWriter { return d.ResponseWriter }
