package server

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/ase-project/ase/internal/config"
)

// logOutput is the management log's destination with its level and format
// (admin_log_level, admin_log_format), both of which a reload changes
// while loggers made from it are in use.
type logOutput struct {
	w     io.Writer
	level slog.LevelVar

	mu     sync.Mutex // serializes set
	format config.LogFormat
	cur    atomic.Pointer[baseHandler]
}

// baseHandler is one format's handler; gen tells handlers derived with
// WithAttrs or WithGroup that the format changed.
type baseHandler struct {
	gen uint64
	h   slog.Handler
}

// newLogger returns the management log: lines on w in cfg's format, at
// its level.
func newLogger(w io.Writer, cfg *config.Config) (*slog.Logger, *logOutput) {
	o := &logOutput{w: w}
	o.set(cfg.AdminLogLevel, cfg.AdminLogFormat)
	return slog.New(&logHandler{out: o}), o
}

// set changes the level and format of every logger made from o.
func (o *logOutput) set(level int, format config.LogFormat) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.level.Set(LogLevel(level))
	if old := o.cur.Load(); old != nil && format == o.format {
		return
	}
	opts := &slog.HandlerOptions{Level: &o.level}
	var h slog.Handler = slog.NewTextHandler(o.w, opts)
	if format == config.LogJSON {
		h = slog.NewJSONHandler(o.w, opts)
	}
	var gen uint64
	if old := o.cur.Load(); old != nil {
		gen = old.gen + 1
	}
	o.format = format
	o.cur.Store(&baseHandler{gen: gen, h: h})
}

// logHandler writes through its logOutput's current format, with the
// attributes and groups it was derived with.
type logHandler struct {
	out    *logOutput
	derive []func(slog.Handler) slog.Handler // WithAttrs and WithGroup, in order
	cache  atomic.Pointer[baseHandler]       // the derived handler of the current format
}

func (h *logHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.out.level.Level() }

func (h *logHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h *logHandler) current() slog.Handler {
	base := h.out.cur.Load()
	if len(h.derive) == 0 {
		return base.h
	}
	if c := h.cache.Load(); c != nil && c.gen == base.gen {
		return c.h
	}
	d := base.h
	for _, f := range h.derive {
		d = f(d)
	}
	h.cache.Store(&baseHandler{gen: base.gen, h: d})
	return d
}

func (h *logHandler) with(f func(slog.Handler) slog.Handler) slog.Handler {
	derive := append(append([]func(slog.Handler) slog.Handler(nil), h.derive...), f)
	return &logHandler{out: h.out, derive: derive}
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) })
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
