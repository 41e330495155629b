// Package audit records every configuration change as one JSON line: when,
// who, through what, which action, with which parameters (secrets masked),
// and how it ended.
package audit

import (
	"encoding/json"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Entry is one audit record.
type Entry struct {
	Time   time.Time      `json:"time"`
	User   string         `json:"user"`
	Via    string         `json:"via"`  // rest_api or cli
	Auth   string         `json:"auth"` // the credential used: secret_key, session, apikey, x509
	Client string         `json:"client"`
	Action string         `json:"action"`
	Params map[string]any `json:"params,omitempty"`
	Result string         `json:"result"` // "success" or the failure's status string
}

// Log writes entries to w. A nil *Log records nothing (audit disabled).
type Log struct {
	log *slog.Logger
	loc *time.Location
	now func() time.Time

	mu sync.Mutex
	w  io.Writer
}

// New returns a Log writing to w, with times in loc.
func New(w io.Writer, loc *time.Location, log *slog.Logger) *Log {
	return &Log{w: w, loc: loc, log: log, now: time.Now}
}

// Record writes e, stamping the time and masking secrets in its params.
func (l *Log) Record(e Entry) {
	if l == nil {
		return
	}
	e.Time = l.now().In(l.loc)
	e.Params = Mask(e.Params)
	b, err := json.Marshal(e)
	if err != nil {
		l.log.Error("audit entry cannot be encoded", "action", e.Action, "error", err)
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		l.log.Error("audit log write failed", "action", e.Action, "error", err)
	}
}

// Masked replaces a secret value.
const Masked = "********"

// secretWords mark a parameter as secret wherever they appear in its name.
var secretWords = []string{"password", "secret", "token", "key_value"}

// Mask returns a copy of params with the values of secret-looking keys
// replaced, at any depth.
func Mask(params map[string]any) map[string]any {
	if params == nil {
		return nil
	}
	out := make(map[string]any, len(params))
	for k, v := range params {
		// Only text can be a secret: "oauth2_access_token": true is a
		// setting, not a token.
		if _, isText := v.(string); isText && isSecret(k) {
			out[k] = Masked
			continue
		}
		out[k] = maskValue(v)
	}
	return out
}

func maskValue(v any) any {
	switch t := v.(type) {
	case map[string]any:
		return Mask(t)
	case []any:
		c := make([]any, len(t))
		for i, e := range t {
			c[i] = maskValue(e)
		}
		return c
	}
	return v
}

func isSecret(key string) bool {
	k := strings.ToLower(key)
	for _, w := range secretWords {
		if strings.Contains(k, w) {
			return true
		}
	}
	return false
}
