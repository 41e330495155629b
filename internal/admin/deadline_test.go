package admin

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// A handler that works longer than the server's WriteTimeout still gets
// its answer to the client; without WriteDeadlines the client reads EOF.
func TestWriteDeadlinesStartWithTheAnswer(t *testing.T) {
	const timeout = 50 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The work: it ends only once the server's write deadline (set
		// when the request was read, before this handler ran) has passed,
		// an instant on the wall clock, however slow the machine.
		time.Sleep(4 * timeout)
		writeJSON(w, 200, success("done"))
	})
	for _, wrapped := range []bool{false, true} {
		h := http.Handler(slow)
		if wrapped {
			h = WriteDeadlines(slow)
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Config.WriteTimeout = timeout
		srv.Start()
		resp, err := http.Get(srv.URL)
		switch {
		case wrapped && err != nil:
			t.Fatalf("wrapped: %v", err)
		case wrapped:
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "{\n  \"status\": \"success\",\n  \"status_message\": \"done\"\n}\n" {
				t.Fatalf("wrapped: got %d %q", resp.StatusCode, b)
			}
		case err == nil:
			resp.Body.Close()
			t.Fatal("unwrapped: the answer arrived after the write timeout; the test shows nothing")
		}
		srv.Close()
	}
}
