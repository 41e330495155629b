package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/ase-project/ase/internal/wire"
)

// recorder is a management API that answers every request with reply and
// records what it was sent.
type recorder struct {
	mu    sync.Mutex
	calls []string // method, path?query, body
}

func (rec *recorder) server(t *testing.T, reply string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rec.mu.Lock()
		rec.calls = append(rec.calls, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(b)))
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(reply))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestABSCommandsSend(t *testing.T) {
	for _, c := range []struct {
		args  []string
		reply string
		code  int
		sent  string // the request, or "" for none
		out   string // stdout (exit 0) or stderr contains
	}{
		{[]string{"enable_abs"}, `{"status": "enabled", "status_message": "Behavioural detection is now enabled"}`, 0,
			"POST /v5/ase/firewall/abs?status=enable", "Behavioural detection is now enabled\n"},
		{[]string{"disable_abs_attack"}, `{"status": "disabled", "status_message": "ABS attack is now disabled"}`, 0,
			"POST /v5/ase/firewall/abs_attack?status=disable", "ABS attack is now disabled\n"},
		{[]string{"abs_attacklist", "--status", "active", "--from", "2026-12-01T08:00"}, `{"status": "active", "ips": [{"ip": "127.0.0.9", "status": "active", "detector": "extreme_client_activity", "api_name": "shop", "detected_time": "2026-12-01T08:00:01Z", "expires": null}]}`, 0,
			"GET /v5/abs/attacklist?earlier_date=2026-12-01T08%3A00&status=active",
			"attack list (active) : 1\n  ip 127.0.0.9  active  extreme_client_activity  api shop  detected 2026-12-01T08:00:01Z  expires never\n"},
		{[]string{"delete_abs_attacklist", "cookie", "SID", "abc"}, `{"status": "success", "status_message": "1 entries deleted from the attack list"}`, 0,
			`DELETE /v5/abs/attacklist {"cookies":[{"name":"SID","value":"abc"}]}`, "1 entries deleted from the attack list\n"},
		{[]string{"delete_abs_attacklist", "--all-ips", "--all-tokens"}, `{"status": "success", "status_message": "0 entries deleted from the attack list"}`, 0,
			`DELETE /v5/abs/attacklist {"delete_all_ips":true,"delete_all_oauth_tokens":true}`, "0 entries deleted from the attack list\n"},
		{[]string{"delete_abs_attacklist"}, `{}`, ExitUsage, "", "give an identity"},
		{[]string{"delete_abs_attacklist", "cookie", "abc"}, `{}`, ExitUsage, "", "TYPE NAME VALUE"},
		{[]string{"abs_policy", "shop", "--mode", "api_probing=report", "--threshold", "requests=3"}, `{"status": "success", "status_message": "detection policy of api shop updated"}`, 0,
			`PUT /v5/ase/abs/shop/policy {"modes":{"api_probing":"report"},"thresholds":{"requests":3}}`, "detection policy of api shop updated\n"},
		{[]string{"abs_policy", "shop", "--threshold", "requests"}, `{}`, ExitUsage, "", "figure=number"},
		{[]string{"abs_policy", "shop", "--reset", "--mode", "a=b"}, `{}`, ExitUsage, "", "not both"},
		{[]string{"abs_policy", "shop", "--reset"}, `{"status": "success", "status_message": "detection policy of api shop reset to the defaults"}`, 0,
			"DELETE /v5/ase/abs/shop/policy", "detection policy of api shop reset to the defaults\n"},
		{[]string{"abs_policy", "shop"}, `{"api_id": "shop", "training": false, "modes": {"api_probing": "report"}, "figures": [{"identity": "ip", "figure": "requests", "detector": "extreme_client_activity", "threshold": 3, "override": true}]}`, 0,
			"GET /v5/ase/abs/shop", "api : shop\nstate : enforcing\nmodes :\n  api_probing  report\nfigures :\n  ip  requests  extreme_client_activity  threshold 3 (override)  0 windows learned\n"},
		{[]string{"abs_retrain", "shop"}, `{"status": "success", "status_message": "api shop is training again"}`, 0,
			"POST /v5/ase/abs/shop/retrain", "api shop is training again\n"},
		{[]string{"abs_status"}, `{"enabled": true, "enforcing": true, "training_period": "1d", "window": "5m", "max_clients": 100, "tracked_clients": 3, "ttl": {"ip": "1h", "token": "0"}, "apis": [{"api_id": "shop", "training": true, "training_until": "2026-12-02T00:00:00Z"}]}`, 0,
			"GET /v5/ase/abs", "behavioural detection : enabled\nabs attack            : enabled\ntraining period       : 1d\nwindow                : 5m\ntracked clients       : 3 of 100\nttl                   : ip 1h, token 0\napis                  : 1\n  shop  training until 2026-12-02T00:00:00Z\n"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			rec := &recorder{}
			srv := rec.server(t, c.reply)
			e, stdout, stderr := testEnv("", map[string]string{"ASE_URL": srv.URL, "ASE_PASSWORD": "admin"})
			code := run(context.Background(), e, c.args)
			out := stdout.String()
			if c.code != 0 {
				out = stderr.String()
			}
			if code != c.code || c.code == 0 && out != c.out || !strings.Contains(out, c.out) {
				t.Fatalf("exit %d (want %d)\nstdout %q\nstderr %q\nwant %q", code, c.code, stdout, stderr, c.out)
			}
			sent := strings.Join(rec.calls, "\n")
			if sent != c.sent {
				t.Fatalf("sent %q, want %q", sent, c.sent)
			}
		})
	}
}

// TestABSAttackListJSON: -o json prints the server's reply as it is.
func TestABSAttackListJSON(t *testing.T) {
	rec := &recorder{}
	reply := `{"name": "api_attacklist", "status": "all", "ips": [], "cookies": [], "oauth_tokens": [], "api_keys": [], "usernames": []}`
	srv := rec.server(t, reply)
	e, stdout, _ := testEnv("", map[string]string{"ASE_URL": srv.URL, "ASE_PASSWORD": "admin"})
	if code := run(context.Background(), e, []string{"abs_attacklist", "-o", "json"}); code != 0 {
		t.Fatalf("exit %d", code)
	}
	var l wire.ABSAttackList
	if err := json.Unmarshal(stdout.Bytes(), &l); err != nil || l.Name != "api_attacklist" || l.IPs == nil {
		t.Fatalf("%v %s", err, stdout)
	}
}
