package proxy

import (
	"bytes"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/ase-project/ase/internal/rfc9110"
)

// Hop-by-hop headers go in any spelling, with those Connection names; the
// usual case (none present) costs no allocation.
func TestStripHopByHop(t *testing.T) {
	var resp fasthttp.ResponseHeader
	resp.DisableNormalizing()
	resp.Set("content-type", "text/plain")
	resp.Set("KEEP-alive", "timeout=5")
	resp.Set("upgrade", "h2c")
	resp.Set("Connection", "x-private, close")
	resp.Set("X-Private", "secret")
	resp.Set("X-Kept", "1")
	stripHopByHop(&resp)
	for _, h := range []string{"KEEP-alive", "upgrade", "X-Private"} {
		if v := resp.Peek(h); len(v) > 0 {
			t.Errorf("response kept %s: %q", h, v)
		}
	}
	if string(resp.Peek("X-Kept")) != "1" || string(resp.ContentType()) != "text/plain" || !resp.ConnectionClose() {
		t.Errorf("response lost an end-to-end header or its close:\n%s", resp.String())
	}

	var clean fasthttp.ResponseHeader
	clean.DisableNormalizing()
	clean.Set("Content-Type", "application/json")
	clean.Set("X-Request-Id", "abc")
	if n := testing.AllocsPerRun(100, func() { stripHopByHop(&clean) }); n != 0 {
		t.Errorf("%v allocations stripping headers that have nothing to strip", n)
	}
}

// FuzzHasToken checks the hand-written list scanner against the obvious
// implementation on any header value.
func FuzzHasToken(f *testing.F) {
	for _, s := range []string{"keep-alive, Upgrade", "close", ",,x-a ,  X-A", "", "a,b,c"} {
		f.Add([]byte(s), []byte("upgrade"))
	}
	f.Fuzz(func(t *testing.T, list, token []byte) {
		want := false
		for _, item := range bytes.Split(list, []byte(",")) {
			if item = bytes.TrimSpace(item); len(item) > 0 && bytes.EqualFold(item, token) {
				want = true
			}
		}
		if got := rfc9110.HasToken(list, token); got != want {
			t.Fatalf("HasToken(%q, %q) = %v, want %v", list, token, got, want)
		}
	})
}
