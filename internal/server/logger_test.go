package server

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/ase-project/ase/internal/config"
)

// TestLoggerFollowsReload: a reload changes the level and the format of
// the management log, for loggers derived with With and WithGroup too.
func TestLoggerFollowsReload(t *testing.T) {
	var buf bytes.Buffer
	cfg := config.Default()
	log, out := newLogger(&buf, cfg)
	derived := log.With("component", "x").WithGroup("g")

	log.Debug("hidden")
	derived.Info("text", "k", 1)
	if got := buf.String(); strings.Contains(got, "hidden") || !strings.Contains(got, `msg=text component=x g.k=1`) {
		t.Fatalf("got %q", got)
	}

	buf.Reset()
	out.set(5, config.LogJSON)
	log.Debug("shown")
	derived.Info("json", "k", 2)
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %q", buf.String())
	}
	var rec struct {
		Level, Msg, Component string
		G                     map[string]int
	}
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil || rec.Msg != "json" || rec.Component != "x" || rec.G["k"] != 2 {
		t.Fatalf("got %q (%v)", lines[1], err)
	}
	if err := json.Unmarshal([]byte(lines[0]), &rec); err != nil || rec.Level != "DEBUG" || rec.Msg != "shown" {
		t.Fatalf("got %q (%v)", lines[0], err)
	}

	buf.Reset()
	out.set(2, config.LogText)
	log.Warn("dropped")
	log.Error("kept")
	if got := buf.String(); strings.Contains(got, "dropped") || !strings.HasPrefix(got, "time=") || !strings.Contains(got, "msg=kept") {
		t.Fatalf("got %q", got)
	}
}

// TestLoggerConcurrentReload: logging while the format changes is safe
// (run with -race).
func TestLoggerConcurrentReload(t *testing.T) {
	var mu sync.Mutex
	var n int
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); n++; mu.Unlock(); return len(p), nil })
	log, out := newLogger(w, config.Default())
	derived := log.With("a", 1)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				derived.Info("x")
			}
		}()
	}
	for i := 0; i < 50; i++ {
		out.set(4, []config.LogFormat{config.LogText, config.LogJSON}[i%2])
	}
	wg.Wait()
	if n != 800 {
		t.Fatalf("got %d lines, want 800", n)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
