package lists

import (
	"fmt"
	"testing"
	"unsafe"
)

// TestNameHashesMeanTheSame: a key made with a remembered name's hashes is
// the key made without them; the name kept is a copy (a request's buffer
// may be reused under it); the names kept are bounded, the first ones met.
func TestNameHashesMeanTheSame(t *testing.T) {
	h := newHasher()
	plain := hasher{s1: h.s1, s2: h.s2} // no memory of names
	buf := []byte("sid")
	name := unsafe.String(&buf[0], len(buf)) // as frontdoor's b2s makes them
	first := h.key(Cookie, name, "v")
	if first != plain.key(Cookie, "sid", "v") {
		t.Fatal("the first key differs from the plain one")
	}
	copy(buf, "xyz") // the request's buffer now holds another request
	if got := h.key(Cookie, "sid", "v"); got != first {
		t.Fatal("a remembered name's key changed when the buffer it came from was reused")
	}
	if got, want := h.key(Cookie, "xyz", "v"), plain.key(Cookie, "xyz", "v"); got != want {
		t.Fatal("the reused buffer's new name hashed as the old one")
	}
	for i := 0; i < 3*maxNameHashes; i++ {
		n := fmt.Sprintf("name-%d", i)
		if h.key(APIKey, n, "k") != plain.key(APIKey, n, "k") {
			t.Fatalf("%s: keys differ", n)
		}
	}
	if got := len(*h.names.p.Load()); got != maxNameHashes {
		t.Fatalf("%d names kept, want the bound %d", got, maxNameHashes)
	}
	if h.key(Cookie, "sid", "v") != first {
		t.Fatal("a name met first was pushed out or changed")
	}
	if n := testing.AllocsPerRun(100, func() { h.key(Cookie, "sid", "v"); h.key(Token, "", "t") }); n != 0 {
		t.Fatalf("%v allocations per key of a remembered name", n)
	}
}
