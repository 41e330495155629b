package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// TestSharedSecretChecksLimited: shared secrets not seen before cost an
// argon2id check only at the rate allowed (20 a second, 20 at once); a
// flood of wrong ones past it is refused unchecked, and counted as such
// in ase_sideband_secret_checks_total. Every presented secret is either
// checked or refused, never lost from the count; a sideband token and a
// secret verified before the flood still pass.
func TestSharedSecretChecksLimited(t *testing.T) {
	i := startSideband(t, map[string]string{"enable_sideband_authentication": "true", "listen_address": "127.0.0.1"})
	call := `{"source_ip": "198.51.100.1", "method": "GET", "url": "/shop", "body": ""}`
	const secret = "the gateway's secret"
	wantStatus(t, i.Do("POST", "/v5/ase/sideband/secret", `{"name": "gw", "secret": "`+secret+`"}`, nil), 200, "success", "*")
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/secret", `{"name": "gw", "active": true}`, nil), 200, "success", "*")
	token := strings.Repeat("t0", 16)
	wantStatus(t, i.Do("PUT", "/v5/ase/sideband/token", `{"token": "`+token+`"}`, nil), 200, "success", "*")

	checks := func() (checked, refused float64) {
		fams := scrape(t, i)
		return value(t, fams, "ase_sideband_secret_checks_total", map[string]string{"result": "checked"}),
			value(t, fams, "ase_sideband_secret_checks_total", map[string]string{"result": "refused"})
	}
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": secret}); r.Code != 200 {
		t.Fatalf("the active secret: got %d %s, want 200", r.Code, r.Body)
	}
	if c, r := checks(); c != 1 || r != 0 {
		t.Fatalf("after one secret: got %v checked, %v refused; want 1 and 0", c, r)
	}

	// Batches of wrong secrets, all at once, until some are refused
	// unchecked; each is counted before its 401 is sent.
	flood := func(batch, n int) {
		t.Helper()
		var wg sync.WaitGroup
		codes := make(chan int, n)
		for k := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest("POST", i.dataURL()+"/sideband/request", strings.NewReader(call))
				req.Header.Set("CLIENT-TOKEN", fmt.Sprintf("wrong secret %d.%d", batch, k))
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					codes <- 0
					return
				}
				resp.Body.Close()
				codes <- resp.StatusCode
			}()
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != 401 {
				t.Fatalf("a wrong secret: got %d, want 401", c)
			}
		}
	}
	sent := 1
	for batch := 0; ; batch++ {
		c, r := checks()
		if c+r != float64(sent) {
			t.Fatalf("got %v checked and %v refused, want %d in all", c, r, sent)
		}
		if r > 0 {
			break
		}
		if batch == 5 {
			t.Fatalf("%d wrong secrets, sent 60 at a time, were all checked: none refused past 20 a second", sent-1)
		}
		flood(batch, 60)
		sent += 60
	}

	// Neither a token nor a secret verified before is held up.
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"ASE-Token": token}); r.Code != 200 {
		t.Fatalf("the token after the flood: got %d, want 200", r.Code)
	}
	if r := i.Data("POST", "/sideband/request", call, map[string]string{"CLIENT-TOKEN": secret}); r.Code != 200 {
		t.Fatalf("the verified secret after the flood: got %d, want 200", r.Code)
	}
}
