package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// reloader re-reads ase.conf and api_dir, on SIGHUP or POST /reload, and
// applies what can change while ASE runs: the management log's level and
// format, and api_dir (imported as at start: new and changed files). Every
// other changed key is reported as needing a restart and left as it is, so
// nothing that holds connections or state (ports, store, lists, proxy) is
// touched. A file with any problem, or an api_dir with any invalid file,
// changes nothing.
type reloader struct {
	mu   sync.Mutex // one reload at a time
	cfg  atomic.Pointer[config.Config]
	log  *slog.Logger
	logs *logOutput
	st   store.Store
	// lookupEnv reads the ASE_<KEY> overrides again (os.LookupEnv).
	lookupEnv func(string) (string, bool)
}

func newReloader(cfg *config.Config, log *slog.Logger, logs *logOutput, st store.Store) *reloader {
	r := &reloader{log: log, logs: logs, st: st, lookupEnv: os.LookupEnv}
	r.cfg.Store(cfg)
	return r
}

// Config is the configuration in effect.
func (r *reloader) Config() *config.Config { return r.cfg.Load() }

// Reload reloads the configuration for by (who asked: a user, or SIGHUP).
// The reply's Problems, if any, are why nothing changed; an error means
// the reload could not be tried (the store is unreachable).
func (r *reloader) Reload(ctx context.Context, by string) (wire.Reload, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := r.cfg.Load()
	next, err := config.Load(cur.Path, r.lookupEnv)
	if err == nil {
		err = importAPIDir(ctx, r.st, next.APIDir, r.log)
		if errors.Is(err, store.ErrUnavailable) {
			r.log.Error("configuration not reloaded: api_dir cannot be imported; ASE runs on as before", "by", by, "error", err)
			return wire.Reload{}, err
		}
	}
	if err != nil {
		problems := problemsOf(err)
		r.log.Error("configuration not reloaded; ASE runs on as before", "by", by, "problems", len(problems))
		for _, p := range problems {
			r.log.Error("reload: " + p)
		}
		return wire.Reload{Status: wire.StatusValidation, Problems: problems}, nil
	}

	eff, changes := config.Reload(cur, next)
	reply := wire.Reload{Status: wire.StatusSuccess, Applied: []wire.ReloadChange{}, NeedsRestart: []wire.ReloadChange{}, Ignored: []string{}}
	// The changes are logged before the log's own level or format changes.
	for _, ch := range changes {
		rc := wire.ReloadChange{Key: ch.Key, From: ch.Old, To: ch.New, Secret: ch.Secret, Hint: ch.Hint}
		if ch.Live {
			reply.Applied = append(reply.Applied, rc)
			r.log.Info("reload: " + ch.String() + ": applied")
			continue
		}
		reply.NeedsRestart = append(reply.NeedsRestart, rc)
		msg := "reload: " + ch.String() + ": needs a restart, not applied"
		if ch.Hint != "" {
			msg += " (" + ch.Hint + ")"
		}
		r.log.Warn(msg)
	}
	for _, n := range eff.Ignored {
		reply.Ignored = append(reply.Ignored, n.String())
		if !slices.ContainsFunc(cur.Ignored, func(o config.Ignored) bool { return o.Key == n.Key }) {
			r.log.Info(n.String(), "at", n.Pos)
		}
	}
	for _, w := range eff.Warnings {
		if !slices.Contains(cur.Warnings, w) {
			r.log.Warn(w)
		}
	}
	reply.Message = reloadMessage(len(reply.Applied), len(reply.NeedsRestart))
	r.log.Info(reply.Message, "by", by)
	r.logs.set(eff.AdminLogLevel, eff.AdminLogFormat)
	r.cfg.Store(eff)
	return reply, nil
}

func reloadMessage(applied, restart int) string {
	if applied+restart == 0 {
		return "configuration reloaded: no key changed"
	}
	return fmt.Sprintf("configuration reloaded: %d changed %s applied, %d %s a restart",
		applied, plural(applied, "key", "keys"), restart, plural(restart, "needs", "need"))
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// problemsOf lists the problems an error joins, one line each.
func problemsOf(err error) []string {
	var out []string
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		out = append(out, strings.Split(e.Error(), "\n")...)
	}
	walk(err)
	return out
}

// watchHangup reloads on every SIGHUP (systemctl reload) until ctx ends,
// logging the outcome and recording it in the audit log. The signal is
// caught from hup, subscribed at the very start so that a SIGHUP during
// start-up is not fatal: it reloads once the server runs.
func (r *reloader) watchHangup(ctx context.Context, hup <-chan os.Signal, auditLog *audit.Log) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
		}
		reply, err := r.Reload(ctx, "SIGHUP")
		entry := audit.Entry{Via: "signal", Auth: "SIGHUP", Action: "reload", Params: reply.AuditParams(), Result: reply.Status}
		if err != nil {
			entry.Result = wire.StatusFail
		}
		auditLog.Record(entry)
	}
}

// notifyHangup subscribes to SIGHUP: from then on it reloads instead of
// ending the process. stop ends the subscription.
func notifyHangup() (hup chan os.Signal, stop func()) {
	hup = make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}
