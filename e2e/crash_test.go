package e2e

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ase-project/ase/internal/store"
)

// TestCrashKeepsAcknowledgedWrites kills the server with SIGKILL at random
// moments while several writers change the configuration. After each
// restart every change that was acknowledged with 200 must be there, and
// every acknowledged delete must be gone; a change in flight at the kill
// may land or not, but nothing else may.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	i := startInstance(t, nil)
	const writers, idsPerWriter, rounds = 4, 6, 8
	// state[id]: true = acknowledged present, false = acknowledged absent.
	state := map[string]bool{}
	rng := rand.New(rand.NewPCG(1, 2))
	totalAcked := 0

	for round := 0; round < rounds; round++ {
		var mu sync.Mutex
		inFlight := map[string]bool{}
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				httpc := &http.Client{Timeout: 10 * time.Second}
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("w%d_%d", w, n%idsPerWriter)
					mu.Lock()
					present := state[id]
					inFlight[id] = true
					mu.Unlock()
					method, body := "POST", apiDoc("/"+id, "")
					if present {
						method, body = "DELETE", ""
					}
					req, _ := http.NewRequest(method, i.MgmtURL+"/v5/ase/api?api_id="+id, strings.NewReader(body))
					req.Header.Set("x-ase-access-key", "admin")
					req.Header.Set("x-ase-secret-key", "admin")
					if body != "" {
						req.Header.Set("Content-Type", "application/json")
					}
					resp, err := httpc.Do(req)
					if err != nil {
						return // killed: this id's change stays in flight
					}
					resp.Body.Close()
					if resp.StatusCode != 200 {
						t.Errorf("%s %s: HTTP %d", method, id, resp.StatusCode)
						return
					}
					mu.Lock()
					state[id] = !present
					delete(inFlight, id)
					totalAcked++
					mu.Unlock()
				}
			}(w)
		}
		time.Sleep(time.Duration(50+rng.IntN(400)) * time.Millisecond)
		i.Kill()
		close(stop)
		wg.Wait()

		i.Start()
		var list struct {
			API []struct {
				ID string `json:"api_id"`
			} `json:"api"`
		}
		decode(t, i.Do("GET", "/v5/ase/api", "", nil), &list)
		got := map[string]bool{}
		for _, a := range list.API {
			got[a.ID] = true
		}
		// A change in flight at the kill may have landed or not: either is
		// correct, so learn which (this includes an id's first change).
		for id := range inFlight {
			state[id] = got[id]
		}
		for id, want := range state {
			if inFlight[id] {
				continue
			}
			if got[id] != want {
				t.Fatalf("round %d: api %s present=%v after the crash, but its last acknowledged change made it present=%v", round, id, got[id], want)
			}
		}
		for id := range got {
			if _, known := state[id]; !known && !inFlight[id] {
				t.Fatalf("round %d: api %s exists but was never acknowledged", round, id)
			}
		}
	}
	if totalAcked < rounds*writers {
		t.Fatalf("only %d writes acknowledged over %d rounds: the test did not exercise the store", totalAcked, rounds)
	}
	t.Logf("%d acknowledged writes across %d crashes", totalAcked, rounds)

	// Finally the file itself passes bbolt's consistency check.
	i.Kill()
	st, err := store.Open(filepath.Join(i.Conf["data_dir"], "ase.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Check(); err != nil {
		t.Fatalf("store is inconsistent after crashes: %v", err)
	}
}
