package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPortableDataPath runs the binary as it is built for macOS, the BSDs
// and every system other than Linux: without the event loops and the raw
// socket calls (the build tag ase_portable selects the same files GOOS
// other than linux does), every connection of the data port on the general
// server. The suite also cross-compiles for darwin and freebsd (test.sh);
// this test shows that what they get runs and decides the same.
func TestPortableDataPath(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "ase-portable")
	args := []string{"build", "-tags", "ase_portable", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	build := exec.Command("go", append(args, "../cmd/ase")...)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building with ase_portable: %v\n%s", err, out)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatal(err)
	}

	a := newBackend(t, "a", false)
	i := newInstance(t, map[string]string{"enable_ase_health": "true"}) // inline_event_loops stays at its default, true
	i.Bin = bin
	i.Start()
	if out := i.Output(); !strings.Contains(out, "inline_event_loops: no event loops on linux (they are Linux's): the general server serves every connection") {
		t.Fatalf("the start-up log does not say which data path serves:\n%s", out)
	}
	wantJSON(t, i.Do("POST", "/v5/ase/api?api_id=shop", apiDoc("/shop", servers(a)), nil), 200, ok)
	wantStatus(t, i.Do("POST", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "ip 127.0.0.1 added to blacklist")
	if r := i.get("GET", "/shop/x", nil); r.Code != 403 || a.count() != 0 {
		t.Fatalf("a deny-listed client got %d (backend reached %d times)", r.Code, a.count())
	}
	wantStatus(t, i.Do("DELETE", "/v5/ase/firewall/blacklist", `{"type": "ip", "value": "127.0.0.1"}`, nil), 200, "success", "ip 127.0.0.1 deleted from blacklist")
	if r := i.get("GET", "/shop/items?x=1", nil); r.Code != 200 || !strings.HasSuffix(string(r.Body), "GET /shop/items?x=1 body=") {
		t.Fatalf("got %d %s", r.Code, r.Body)
	}
	// The front door is the same: two Hosts are refused, a chunked body
	// arrives whole.
	if got := rawExchange(t, i, "GET /shop/x HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"); got != "HTTP/1.1 400 Bad Request" {
		t.Fatalf("two Hosts: got %q", got)
	}
	if got := rawExchange(t, i, "POST /shop/c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n"); got != "HTTP/1.1 200 OK" || a.lastBody() != "abcd" {
		t.Fatalf("chunked: got %q, the backend read %q", got, a.lastBody())
	}
	if r := i.get("GET", "/ase", nil); r.Code != http.StatusOK {
		t.Fatalf("health: got %d", r.Code)
	}
}
