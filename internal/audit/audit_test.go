package audit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestRecordMasksSecrets(t *testing.T) {
	var buf bytes.Buffer
	l := New(&buf, time.UTC, slog.Default())
	l.now = func() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }
	l.Record(Entry{User: "admin", Via: "cli", Auth: "secret_key", Action: "update_password",
		Params: map[string]any{"new_password": "hunter22", "nested": map[string]any{"Secret": "s3", "name": "ok"}, "list": []any{map[string]any{"token": "t"}}, "oauth2_access_token": true}, Result: "success"})
	line := buf.String()
	for _, secret := range []string{"hunter22", "s3", `"t"`} {
		if strings.Contains(line, secret) {
			t.Fatalf("audit line leaks %s: %s", secret, line)
		}
	}
	var e Entry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatal(err)
	}
	if e.User != "admin" || e.Via != "cli" || e.Action != "update_password" || e.Params["nested"].(map[string]any)["name"] != "ok" || e.Params["oauth2_access_token"] != true || !e.Time.Equal(l.now()) {
		t.Fatalf("got %+v", e)
	}
	var nilLog *Log
	nilLog.Record(Entry{}) // audit disabled: must not panic
}
