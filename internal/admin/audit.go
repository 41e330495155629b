package admin

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/wire"
)

// Pages of GET /audit.
const (
	auditDefaultLimit = 100
	auditMaxLimit     = 1000
)

// readAudit is GET /audit: the audit log, newest first, in pages (limit,
// and before: the next cursor of the page before), filtered by user and
// by action (exact names; empty means any).
//
// Who may read it: every authenticated user, whatever the role, and API
// keys too. The audit log is the operators' shared record of who changed
// what: a read account is what an auditor is given, and an API key is
// what a SIEM collector holds, so refusing them would leave the log to
// the people it watches. It holds nothing a reader could misuse: secrets
// are masked and listed tokens, cookies and API keys hashed when the
// entry is written, and every entry is already attributed to an operator
// by name (the vendor's console shows it to every logged-in user).
func (h *Handler) readAudit(c *call) (any, error) {
	cfg := h.d.Config
	switch {
	case !cfg.EnableAudit:
		return nil, fail(http.StatusNotFound, wire.StatusFail, "the audit log is not kept: enable_audit=false")
	case cfg.AuditLogStdout || h.d.AuditFile == "":
		return nil, fail(http.StatusNotFound, wire.StatusFail, "the audit log is not kept in a file: audit_log_stdout=true writes it to standard output (the journal under systemd)")
	}
	q := audit.Query{User: c.query.Get("user"), Action: c.query.Get("action"), Limit: auditDefaultLimit, Before: c.query.Get("before")}
	if v, given := c.query["limit"]; given {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > auditMaxLimit {
			return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter limit contains invalid value %q: a whole number from 1 to %d", v[0], auditMaxLimit)
		}
		q.Limit = n
	}
	page, err := audit.Read(c.ctx, h.d.AuditFile, cfg.LogMaxFiles, q)
	switch {
	case errors.Is(err, audit.ErrCursor):
		return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter before contains invalid value %q: use the next of a page of this log", q.Before)
	case errors.Is(err, audit.ErrGone):
		return nil, fail(http.StatusNotFound, wire.StatusFail, "%v", err)
	case err != nil:
		return nil, err
	}
	return page, nil
}
