package admin

import (
	"net/http"
	"sync"
	"time"

	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// txn is an open transaction: one session's staged changes, seen through
// an overlay of the store by that session only.
type txn struct {
	session  string
	user     string
	opened   time.Time
	deadline time.Time
	overlay  *store.Overlay
	changes  []stagedChange
}

type stagedChange struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params,omitempty"`
	Time   time.Time      `json:"time"`
}

// txns holds the (at most one) open transaction: while it is open, every
// other writer gets 409.
type txns struct {
	mu       sync.Mutex
	cur      *txn
	lifetime time.Duration
	now      func() time.Time
}

// current returns the open transaction, rolling it back first if it
// expired.
func (t *txns) current(h *Handler) *txn {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.cur != nil && !t.now().Before(t.cur.deadline) {
		h.d.Log.Info("transaction expired; rolled back", "user", t.cur.user, "changes", len(t.cur.changes))
		h.d.Audit.Record(audit.Entry{User: t.cur.user, Via: "rest_api", Auth: authSession, Action: "rollback_transaction",
			Params: map[string]any{"reason": "expired", "changes": len(t.cur.changes)}, Result: wire.StatusSuccess})
		t.cur = nil
	}
	return t.cur
}

func (h *Handler) txnRoutes() []*Route {
	return []*Route{
		{Method: "POST", Path: "/api/transaction", Abs: true, Summary: "Open a transaction for this session", handle: h.openTxn},
		{Method: "GET", Path: "/api/transaction", Abs: true, Summary: "The open transaction's status", handle: h.txnStatus},
		{Method: "PUT", Path: "/api/transaction", Abs: true, Summary: `Commit the transaction ({"status": "commit", "message": ...})`, handle: h.commitTxn},
		{Method: "DELETE", Path: "/api/transaction", Abs: true, Summary: "Roll the transaction back", handle: h.rollbackTxn},
		{Method: "GET", Path: "/api/transaction/changes", Abs: true, Summary: "The changes staged in this session's transaction", handle: h.txnChanges},
	}
}

var txnMeta = map[string]string{"href": "/api/transaction", "changes": "/api/transaction/changes"}

func (h *Handler) txnBody(t *txn) map[string]any {
	if t == nil {
		return map[string]any{"status": "closed"}
	}
	return map[string]any{
		"status":            "open",
		"user":              t.user,
		"opened_at":         t.opened.UTC().Format(time.RFC3339),
		"remaining_seconds": int(max(t.deadline.Sub(h.txns.now()), 0) / time.Second),
		"changes":           len(t.changes),
	}
}

func (h *Handler) openTxn(c *call) (any, error) {
	if c.who.session == "" {
		return nil, apiError(http.StatusBadRequest, "InvalidRequest", "transactions belong to sessions: log in at /api/authentication first")
	}
	if c.who.readOnly() || !c.who.role.CanWrite() {
		return nil, denied(c, "user %s has the read role: it cannot change configuration", c.who.user)
	}
	// Like the vendor's: an opening POST states its (empty) length.
	if len(c.r.Header.Values("Content-Length")) == 0 && len(c.r.TransferEncoding) == 0 {
		return nil, apiError(http.StatusLengthRequired, "LengthRequired", "POST /api/transaction needs a body or a Content-Length header")
	}
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	if cur := h.txns.current(h); cur != nil {
		if cur.session == c.who.session {
			return nil, apiError(http.StatusConflict, "TransactionInProgress", "this session already has an open transaction")
		}
		return nil, apiError(http.StatusConflict, "TransactionInProgress", "user %s has a transaction open; retry when it ends", cur.user)
	}
	now := h.txns.now()
	t := &txn{session: c.who.session, user: c.who.user, opened: now, deadline: now.Add(h.txns.lifetime), overlay: store.NewOverlay(h.d.Store)}
	h.txns.mu.Lock()
	h.txns.cur = t
	h.txns.mu.Unlock()
	return map[string]any{"meta": txnMeta, "body": h.txnBody(t)}, nil
}

func (h *Handler) txnStatus(c *call) (any, error) {
	t := h.txns.current(h)
	body := h.txnBody(t)
	if t != nil && t.session != c.who.session {
		// Others learn that one is open (they would get 409), not what
		// it holds.
		delete(body, "changes")
	}
	return map[string]any{"meta": txnMeta, "body": body}, nil
}

func (h *Handler) txnChanges(c *call) (any, error) {
	t := h.txns.current(h)
	if t == nil || t.session != c.who.session {
		return map[string]any{"changes": []stagedChange{}}, nil
	}
	return map[string]any{"changes": t.changes}, nil
}

// endOwnTxn ends the caller's open transaction and returns it, or an
// error when there is none or it is another session's. The caller holds
// writeMu and commits or rolls back what it returns.
func (h *Handler) endOwnTxn(c *call) (*txn, error) {
	t := h.txns.current(h)
	if t == nil {
		return nil, apiError(http.StatusNotFound, "NoTransaction", "there is no open transaction")
	}
	if t.session != c.who.session {
		return nil, apiError(http.StatusConflict, "TransactionInProgress", "the open transaction belongs to user %s's session", t.user)
	}
	h.txns.mu.Lock()
	h.txns.cur = nil
	h.txns.mu.Unlock()
	return t, nil
}

func (h *Handler) commitTxn(c *call) (any, error) {
	var req struct {
		Status  string `json:"status"`
		Message string `json:"message"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	if req.Status != "commit" {
		return nil, apiError(http.StatusBadRequest, "InvalidRequest", `status must be "commit" (DELETE /api/transaction rolls back)`)
	}
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	// However it ends, the transaction is over: a failed commit applies
	// nothing and is rolled back.
	t, err := h.endOwnTxn(c)
	if err != nil {
		return nil, err
	}
	actions := make([]string, len(t.changes))
	for i, ch := range t.changes {
		actions[i] = ch.Action
	}
	params := map[string]any{"message": req.Message, "changes": actions}
	entry := c.auditEntry("commit_transaction", params)
	b := t.overlay.Batch()
	// Checks that only the whole set can make: each change was checked
	// against the memory budget alone when it was staged.
	err = h.d.Lists.CheckBudget(c.ctx, h.d.Store, b)
	if err == nil {
		_, err = h.d.Store.Commit(c.ctx, b)
	}
	if err != nil {
		entry.Result = h.toError(c, err).Status
		h.d.Audit.Record(entry)
		return nil, err
	}
	entry.Result = wire.StatusSuccess
	h.d.Audit.Record(entry)
	return map[string]any{"meta": txnMeta, "body": map[string]any{"status": "committed", "changes": len(t.changes)}}, nil
}

func (h *Handler) rollbackTxn(c *call) (any, error) {
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	t, err := h.endOwnTxn(c)
	if err != nil {
		return nil, err
	}
	entry := c.auditEntry("rollback_transaction", map[string]any{"changes": len(t.changes)})
	entry.Result = wire.StatusSuccess
	h.d.Audit.Record(entry)
	return map[string]any{"meta": txnMeta, "body": map[string]any{"status": "rolled_back", "changes": len(t.changes)}}, nil
}

// apiError is an error in the /api style ({"error": {"type", "message"}}).
func apiError(code int, typ, format string, args ...any) *Error {
	e := fail(code, wire.StatusFail, format, args...)
	e.Type = typ
	return e
}
