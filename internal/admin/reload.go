package admin

import (
	"context"
	"net/http"
	"strings"

	"github.com/ase-project/ase/internal/config"
	"github.com/ase-project/ase/internal/wire"
)

// Reloader re-reads ase.conf and api_dir and applies what can change
// while ASE runs (the server's, also run on SIGHUP).
type Reloader interface {
	// Reload reloads for by (the user who asked). The reply's Problems,
	// if any, are why nothing changed; an error means the reload could
	// not be tried (the store is unreachable).
	Reload(ctx context.Context, by string) (wire.Reload, error)
	// Config is the configuration in effect, reloaded keys included.
	Config() *config.Config
}

// config is the configuration in effect.
func (h *Handler) config() *config.Config {
	if h.d.Reloader != nil {
		return h.d.Reloader.Config()
	}
	return h.d.Config
}

// reload is POST /reload. It is a change like any other (admin role,
// audited with the keys that changed, refused while another session's
// transaction is open), but it cannot be staged: it applies at once.
func (h *Handler) reload(c *call) (any, error) {
	if h.d.Reloader == nil {
		return nil, fail(http.StatusNotFound, wire.StatusFail, "this server has no configuration to reload")
	}
	if c.txn != nil {
		return nil, fail(http.StatusConflict, wire.StatusTransactionOpen, "a reload applies at once and cannot be staged: commit or roll back your transaction first")
	}
	reply, err := h.d.Reloader.Reload(c.ctx, c.who.user)
	if err != nil {
		return nil, err
	}
	c.params = reply.AuditParams()
	if len(reply.Problems) > 0 {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "configuration not reloaded: ASE runs on as before").
			withDetail(strings.Join(reply.Problems, "\n"))
	}
	return reply, nil
}
