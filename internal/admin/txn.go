package admin

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ase-project/ase/internal/audit"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

// The open transaction lives in the store, so that every node of a
// cluster sees it: txnKey holds its header (owner session's handle, user,
// opening time, deadline, number of staged changes) and txnPrefix+ID+"/"+n
// the n-th staged change (its action for GET /api/transaction/changes, its
// operations and the conditions it relies on). Every node rebuilds the
// same view (a store.Overlay) from them, so the owner continues on any
// node. Every configuration write outside the transaction carries
// store.Absent(txnKey), so it fails, atomically, while one is open; every
// staging, commit and rollback carries store.Unchanged(txnKey, header),
// and ends (commit, rollback, expiry) delete txnPrefix in the same batch.
const (
	txnPrefix = "txn/"
	txnKey    = txnPrefix + "open"
)

// txnHeader is txnKey's value.
type txnHeader struct {
	ID       string    `json:"id"`
	Session  string    `json:"session"` // the owner session's handle, never its ID
	User     string    `json:"user"`
	Opened   time.Time `json:"opened"`
	Deadline time.Time `json:"deadline"`
	Changes  int       `json:"changes"`
}

func changeKey(id string, n int) string { return fmt.Sprintf("%s%s/%08d", txnPrefix, id, n) }

// txn is an open transaction as one node sees it: its header as stored,
// and its staged changes seen through an overlay of the store. A txn is
// never modified: staging makes a new one from a clone of the overlay,
// so requests reading the old one are undisturbed.
type txn struct {
	txnHeader
	raw     []byte // the header as stored
	overlay *store.Overlay
	changes []stagedChange
}

type stagedChange struct {
	Action string         `json:"action"`
	Params map[string]any `json:"params,omitempty"`
	Time   time.Time      `json:"time"`
}

// txns keeps this node's last view of the open transaction, to extend it
// with the changes staged since (on any node) rather than rebuild it.
type txns struct {
	mu       sync.Mutex
	cache    *txn
	lifetime time.Duration
	now      func() time.Time
}

// errTxnMoved means the transaction changed (a change staged on another
// node) between reading it and writing: the request is served again.
var errTxnMoved = errors.New("a transaction was opened, changed or ended on another node meanwhile")

// openHeader reads the open transaction's header from the store, nil when
// none is open. An expired one is rolled back first (by whichever node
// sees it first: the delete is conditional).
func (h *Handler) openHeader(ctx context.Context) (*txnHeader, []byte, error) {
	for attempt := 0; ; attempt++ {
		raw, err := h.d.Store.Get(ctx, txnKey)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, err
		}
		var hd txnHeader
		bad := json.Unmarshal(raw, &hd)
		if bad == nil && h.txns.now().Before(hd.Deadline) {
			return &hd, raw, nil
		}
		if bad != nil {
			h.d.Log.Error("the stored open transaction is malformed; rolling it back", "error", bad)
		}
		done, err := h.dropTxn(ctx, raw)
		if err != nil {
			// The store cannot be written (a cluster cut off from etcd):
			// expired is closed all the same, and reads go on.
			h.d.Log.Warn("rolling back an expired transaction failed; retried at the next request", "error", err)
			return nil, nil, nil
		}
		if done && bad == nil {
			h.d.Log.Info("transaction expired; rolled back", "user", hd.User, "changes", hd.Changes)
			h.d.Audit.Record(audit.Entry{User: hd.User, Via: "rest_api", Auth: authSession, Action: "rollback_transaction",
				Params: map[string]any{"reason": "expired", "changes": hd.Changes}, Result: wire.StatusSuccess})
		}
		if attempt == 3 {
			return nil, nil, errTxnMoved
		}
	}
}

// dropTxn deletes the transaction whose header is raw, if it still is:
// done is false when it had changed or ended meanwhile.
func (h *Handler) dropTxn(ctx context.Context, raw []byte) (done bool, err error) {
	_, err = h.d.Store.Commit(ctx, store.Batch{Conds: []store.Cond{store.Unchanged(txnKey, raw)}, Ops: []store.Op{store.DeletePrefix(txnPrefix)}})
	h.txns.forget()
	if isTxnConflict(err) {
		return false, nil
	}
	return err == nil, err
}

func (t *txns) forget() {
	t.mu.Lock()
	t.cache = nil
	t.mu.Unlock()
}

// isTxnConflict reports whether err is a failed condition on txnKey.
func isTxnConflict(err error) bool {
	var ce *store.ConflictError
	return errors.As(err, &ce) && ce.Cond.Key == txnKey
}

// view returns the transaction with header hd (raw as stored) with its
// staged changes: this node's last view, extended by the changes staged
// since, or rebuilt from the store.
func (h *Handler) view(ctx context.Context, hd *txnHeader, raw []byte) (*txn, error) {
	h.txns.mu.Lock()
	cached := h.txns.cache
	h.txns.mu.Unlock()
	if cached != nil && cached.ID == hd.ID && cached.Changes == hd.Changes {
		return cached, nil
	}
	t := &txn{txnHeader: *hd, raw: raw, overlay: store.NewOverlay(h.d.Store)}
	from := 0
	if cached != nil && cached.ID == hd.ID && cached.Changes < hd.Changes {
		t.overlay = cached.overlay.Clone()
		t.changes = append([]stagedChange(nil), cached.changes...)
		from = cached.Changes
	}
	for n := from + 1; n <= hd.Changes; n++ {
		v, err := h.d.Store.Get(ctx, changeKey(hd.ID, n))
		if errors.Is(err, store.ErrNotFound) {
			return nil, errTxnMoved // it ended meanwhile
		}
		if err != nil {
			return nil, err
		}
		ch, b, err := decodeChange(v)
		if err != nil {
			return nil, fmt.Errorf("transaction %s, change %d: %w", hd.ID, n, err)
		}
		t.overlay.Restore(b)
		t.changes = append(t.changes, ch)
	}
	h.txns.keep(t)
	return t, nil
}

// keep makes t this node's view, unless it has a later one.
func (t *txns) keep(x *txn) {
	t.mu.Lock()
	if c := t.cache; c == nil || c.ID != x.ID || c.Changes <= x.Changes {
		t.cache = x
	}
	t.mu.Unlock()
}

// commitBatch is the batch that commits t: its staged changes, the
// conditions they rely on, and the end of t, all at once.
func commitBatch(t *txn) store.Batch {
	b := t.overlay.Batch()
	b.Conds = append(b.Conds, store.Unchanged(txnKey, t.raw))
	b.Ops = append(b.Ops, store.DeletePrefix(txnPrefix))
	return b
}

// tooLarge says why a transaction's commit batch is past the store's
// limits (413, the transaction left as it is).
func (h *Handler) tooLarge(b *store.Batch, changes int, staging bool) *Error {
	l := h.d.Store.Limits()
	var over []string
	if l.MaxOps > 0 && len(b.Ops) > l.MaxOps {
		over = append(over, fmt.Sprintf("%d operations (the limit is %d)", len(b.Ops), l.MaxOps))
	}
	if l.MaxOps > 0 && len(b.Conds) > l.MaxOps {
		over = append(over, fmt.Sprintf("%d conditions (the limit is %d)", len(b.Conds), l.MaxOps))
	}
	if n := b.Size(); l.MaxBytes > 0 && n > l.MaxBytes {
		over = append(over, fmt.Sprintf("%d bytes (the limit is %d)", n, l.MaxBytes))
	}
	if len(over) == 0 {
		over = append(over, fmt.Sprintf("%d operations, %d conditions and %d bytes", len(b.Ops), len(b.Conds), b.Size()))
	}
	what := fmt.Sprintf("the transaction's %d changes commit as one batch of %s, more than the store applies at once", changes, strings.Join(over, ", "))
	if staging {
		what = fmt.Sprintf("with this change, %s; it is not staged, and the transaction keeps its %d changes: commit them, or roll back (DELETE /api/transaction) and make this change in a smaller transaction", what, changes-1)
	} else {
		what += "; a transaction commits all or nothing, so nothing was applied and the transaction stays open: roll it back (DELETE /api/transaction) and make the changes in smaller transactions"
	}
	return apiError(http.StatusRequestEntityTooLarge, "TransactionTooLarge", "%s", what)
}

// stage stages b in the caller's transaction: the change is written to
// the store (a new change key and the header, conditional on the header),
// so that every node sees it.
func (c *call) stage(b store.Batch) error {
	h, t := c.h, c.txn
	o := t.overlay.Clone()
	staged, err := o.Stage(c.ctx, b)
	if err != nil {
		return err
	}
	ch := stagedChange{Action: c.route.Action, Params: audit.Mask(c.params), Time: h.txns.now().UTC()}
	next := &txn{txnHeader: t.txnHeader, overlay: o, changes: append(append([]stagedChange(nil), t.changes...), ch)}
	next.Changes++
	next.raw, _ = json.Marshal(next.txnHeader)
	// Refuse now a change the commit could not apply.
	if cb := commitBatch(next); !h.d.Store.Limits().Fits(&cb) {
		return h.tooLarge(&cb, next.Changes, true)
	}
	rec, err := encodeChange(ch, staged)
	if err != nil {
		return err
	}
	_, err = h.d.Store.Commit(c.ctx, store.Batch{
		Conds: []store.Cond{store.Unchanged(txnKey, t.raw)},
		Ops:   []store.Op{store.Put(changeKey(next.ID, next.Changes), rec), store.Put(txnKey, next.raw)},
	})
	var tl *store.TooLargeError
	switch {
	case isTxnConflict(err):
		return h.txnGone(c, t)
	case errors.As(err, &tl):
		cb := commitBatch(next)
		return h.tooLarge(&cb, next.Changes, true)
	case err != nil:
		return err
	}
	h.txns.keep(next)
	c.txn = next
	c.staged = true
	return nil
}

// txnGone answers a write to transaction t that found its header changed:
// a change staged on another node meanwhile (serve it again), or t ended.
func (h *Handler) txnGone(c *call, t *txn) error {
	h.txns.forget()
	hd, _, err := h.openHeader(c.ctx)
	if err != nil {
		return err
	}
	if hd != nil && hd.ID == t.ID {
		return errTxnMoved
	}
	return apiError(http.StatusConflict, "TransactionEnded", "the transaction ended (expired, or rolled back) before this change; nothing was staged or applied")
}

// busy is the 409 of a writer while another's transaction is open.
func busy(user string) *Error {
	e := fail(http.StatusConflict, wire.StatusTransactionOpen, "user %s has a transaction open; retry when it ends", user)
	e.Type = "TransactionInProgress"
	return e
}

// noTxn is the condition of every configuration write made outside a
// transaction: none is open. So a transaction opened a moment before on
// any node refuses the write (409), atomically. A writer that commits by
// itself in several batches (a bulk import as a generation) puts it in
// the batch that makes its change take effect, and passes that commit's
// error through refusedByTxn.
var noTxn = store.Absent(txnKey)

// direct commits b outside any transaction, on condition that none is
// open.
func (c *call) direct(b store.Batch) error {
	b.Conds = append(b.Conds[:len(b.Conds):len(b.Conds)], noTxn)
	_, err := c.h.d.Store.Commit(c.ctx, b)
	return c.refusedByTxn(err)
}

// refusedByTxn maps a commit refused by noTxn to the 409 of a writer
// while another's transaction is open, or to a retry of the request when
// the transaction is the caller's own (opened on another node a moment
// ago) or ended meanwhile. Other errors are returned as they are.
func (c *call) refusedByTxn(err error) error {
	if !isTxnConflict(err) {
		return err
	}
	hd, _, herr := c.h.openHeader(c.ctx)
	switch {
	case herr != nil:
		return herr
	case hd == nil:
		// It ended in between (or is not visible here yet).
		return errTxnMoved
	case c.who.session != "" && hd.Session == c.who.session:
		return errTxnMoved // the caller's own, opened on another node a moment ago
	}
	return busy(hd.User)
}

// loadTxn finds the caller's transaction for serve: for a write, refusing
// (409) when another's is open.
func (h *Handler) loadTxn(c *call) error {
	c.txn = nil
	if !c.route.Write() && c.who.session == "" {
		return nil
	}
	hd, raw, err := h.openHeader(c.ctx)
	if err != nil || hd == nil {
		return err
	}
	own := c.who.session != "" && hd.Session == c.who.session
	if !own {
		if c.route.Write() {
			return busy(hd.User)
		}
		return nil
	}
	c.txn, err = h.view(c.ctx, hd, raw)
	return err
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

func (h *Handler) txnBody(hd *txnHeader) map[string]any {
	if hd == nil {
		return map[string]any{"status": "closed"}
	}
	return map[string]any{
		"status":            "open",
		"user":              hd.User,
		"opened_at":         hd.Opened.UTC().Format(time.RFC3339),
		"remaining_seconds": int(max(hd.Deadline.Sub(h.txns.now()), 0) / time.Second),
		"changes":           hd.Changes,
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
	inProgress := func(hd *txnHeader) error {
		if hd != nil && hd.Session == c.who.session {
			return apiError(http.StatusConflict, "TransactionInProgress", "this session already has an open transaction")
		}
		user := "another"
		if hd != nil {
			user = hd.User
		}
		return apiError(http.StatusConflict, "TransactionInProgress", "user %s has a transaction open; retry when it ends", user)
	}
	if hd, _, err := h.openHeader(c.ctx); err != nil {
		return nil, err
	} else if hd != nil {
		return nil, inProgress(hd)
	}
	var id [8]byte
	rand.Read(id[:])
	now := h.txns.now().UTC()
	t := &txn{txnHeader: txnHeader{ID: hex.EncodeToString(id[:]), Session: c.who.session, User: c.who.user, Opened: now, Deadline: now.Add(h.txns.lifetime)},
		overlay: store.NewOverlay(h.d.Store)}
	t.raw, _ = json.Marshal(t.txnHeader)
	// Created only if none is: two nodes opening at once, one wins.
	_, err := h.d.Store.Commit(c.ctx, store.Batch{Conds: []store.Cond{store.Absent(txnKey)}, Ops: []store.Op{store.Put(txnKey, t.raw)}})
	if isTxnConflict(err) {
		hd, _, _ := h.openHeader(c.ctx)
		return nil, inProgress(hd)
	}
	if err != nil {
		return nil, err
	}
	h.txns.keep(t)
	return map[string]any{"meta": txnMeta, "body": h.txnBody(&t.txnHeader)}, nil
}

func (h *Handler) txnStatus(c *call) (any, error) {
	if c.txn != nil {
		return map[string]any{"meta": txnMeta, "body": h.txnBody(&c.txn.txnHeader)}, nil
	}
	hd, _, err := h.openHeader(c.ctx)
	if err != nil {
		return nil, err
	}
	body := h.txnBody(hd)
	// Others learn that one is open (they would get 409), not what it
	// holds.
	delete(body, "changes")
	return map[string]any{"meta": txnMeta, "body": body}, nil
}

func (h *Handler) txnChanges(c *call) (any, error) {
	if c.txn == nil {
		return map[string]any{"changes": []stagedChange{}}, nil
	}
	return map[string]any{"changes": append([]stagedChange{}, c.txn.changes...)}, nil
}

// ownTxn returns the caller's open transaction as stored now, or an error
// when there is none or it is another session's. The caller holds writeMu.
func (h *Handler) ownTxn(c *call) (*txn, error) {
	hd, raw, err := h.openHeader(c.ctx)
	if err != nil {
		return nil, err
	}
	if hd == nil {
		return nil, apiError(http.StatusNotFound, "NoTransaction", "there is no open transaction")
	}
	if hd.Session != c.who.session {
		return nil, apiError(http.StatusConflict, "TransactionInProgress", "the open transaction belongs to user %s's session", hd.User)
	}
	return h.view(c.ctx, hd, raw)
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
	t, err := h.ownTxn(c)
	for attempt := 0; errors.Is(err, errTxnMoved) && attempt < 3; attempt++ {
		t, err = h.ownTxn(c)
	}
	if err != nil {
		return nil, err
	}
	actions := make([]string, len(t.changes))
	for i, ch := range t.changes {
		actions[i] = ch.Action
	}
	entry := c.auditEntry("commit_transaction", map[string]any{"message": req.Message, "changes": actions})
	failed := func(err error) (any, error) {
		entry.Result = h.toError(c, err).Status
		h.d.Audit.Record(entry)
		return nil, err
	}
	b := commitBatch(t)
	// All or nothing: a batch past the store's limits is not cut into
	// parts. The transaction stays open, to be rolled back or committed
	// where the limits allow.
	if !h.d.Store.Limits().Fits(&b) {
		return failed(h.tooLarge(&b, len(t.changes), false))
	}
	// Checks that only the whole set can make: each change was checked
	// against the memory budget alone when it was staged.
	if err := h.d.Lists.CheckBudget(c.ctx, h.d.Store, b); err != nil {
		h.dropTxn(c.ctx, t.raw) // a failed commit ends the transaction
		return failed(err)
	}
	_, err = h.d.Store.Commit(c.ctx, b)
	var tl *store.TooLargeError
	switch {
	case err == nil:
	case isTxnConflict(err):
		if hd, _, herr := h.openHeader(c.ctx); herr == nil && hd != nil && hd.ID == t.ID {
			h.txns.forget()
			return failed(apiError(http.StatusConflict, "TransactionInProgress", "a change was staged in this transaction on another node meanwhile; nothing was applied: commit again"))
		}
		return failed(apiError(http.StatusConflict, "TransactionEnded", "the transaction ended (expired, or rolled back) before the commit; nothing was applied"))
	case errors.As(err, &tl):
		return failed(h.tooLarge(&b, len(t.changes), false))
	case errors.As(err, new(*store.ConflictError)):
		// Another writer changed what a staged change relied on: nothing
		// applies, and the transaction is over.
		h.dropTxn(c.ctx, t.raw)
		return failed(apiError(http.StatusConflict, "Conflict", "the configuration a staged change relied on was changed by someone else since it was staged; nothing was applied and the transaction is rolled back"))
	default:
		return failed(err)
	}
	h.txns.forget()
	entry.Result = wire.StatusSuccess
	h.d.Audit.Record(entry)
	// A new password or a deleted user ended the user's sessions (they
	// are bound to the password): delete them, as outside a transaction.
	for _, ch := range t.changes {
		name, _ := ch.Params["name"].(string)
		if name != "" && (ch.Action == "delete_user" || ch.Action == "update_user" && ch.Params["password_changed"] == true) {
			h.endSessions(name)
		}
	}
	return map[string]any{"meta": txnMeta, "body": map[string]any{"status": "committed", "changes": len(t.changes)}}, nil
}

func (h *Handler) rollbackTxn(c *call) (any, error) {
	h.writeMu.Lock()
	defer h.writeMu.Unlock()
	for attempt := 0; ; attempt++ {
		t, err := h.ownTxn(c)
		if errors.Is(err, errTxnMoved) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, err
		}
		done, err := h.dropTxn(c.ctx, t.raw)
		if err != nil {
			return nil, err
		}
		if !done && attempt < 3 {
			continue // staged into on another node meanwhile, or ended
		}
		entry := c.auditEntry("rollback_transaction", map[string]any{"changes": len(t.changes)})
		entry.Result = wire.StatusSuccess
		h.d.Audit.Record(entry)
		return map[string]any{"meta": txnMeta, "body": map[string]any{"status": "rolled_back", "changes": len(t.changes)}}, nil
	}
}

// apiError is an error in the /api style ({"error": {"type", "message"}}).
func apiError(code int, typ, format string, args ...any) *Error {
	e := fail(code, wire.StatusFail, format, args...)
	e.Type = typ
	return e
}

// A staged change is stored compactly, values as they are (no base64):
// a version byte, the change's description (JSON), its carried
// conditions and its operations, lengths as uvarints.
const changeVersion = 1

func encodeChange(ch stagedChange, b store.Batch) ([]byte, error) {
	meta, err := json.Marshal(ch)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, 16+len(meta)+b.Size()+4*(len(b.Conds)+len(b.Ops)))
	field := func(p []byte) { out = binary.AppendUvarint(out, uint64(len(p))); out = append(out, p...) }
	out = append(out, changeVersion)
	field(meta)
	out = binary.AppendUvarint(out, uint64(len(b.Conds)))
	for _, cd := range b.Conds {
		var flags byte
		if cd.Exists {
			flags |= 1
		}
		if cd.Value != nil {
			flags |= 2
		}
		out = append(out, flags)
		field([]byte(cd.Key))
		if cd.Value != nil {
			field(cd.Value)
		}
	}
	out = binary.AppendUvarint(out, uint64(len(b.Ops)))
	for _, op := range b.Ops {
		out = append(out, byte(op.Kind))
		field([]byte(op.Key))
		field(op.Value)
	}
	return out, nil
}

var errBadChange = errors.New("malformed staged change")

func decodeChange(v []byte) (stagedChange, store.Batch, error) {
	var ch stagedChange
	var b store.Batch
	if len(v) == 0 || v[0] != changeVersion {
		return ch, b, errBadChange
	}
	v = v[1:]
	var bad bool
	num := func() int {
		n, k := binary.Uvarint(v)
		if k <= 0 || n > uint64(len(v)) {
			bad = true
			return 0
		}
		v = v[k:]
		return int(n)
	}
	field := func() []byte {
		n := num()
		if bad || n > len(v) {
			bad = true
			return nil
		}
		p := v[:n:n]
		v = v[n:]
		return p
	}
	one := func() byte {
		if len(v) == 0 {
			bad = true
			return 0
		}
		x := v[0]
		v = v[1:]
		return x
	}
	if err := json.Unmarshal(field(), &ch); bad || err != nil {
		return ch, b, errBadChange
	}
	for n := num(); n > 0 && !bad; n-- {
		flags := one()
		cd := store.Cond{Key: string(field()), Exists: flags&1 != 0}
		if flags&2 != 0 {
			cd.Value = append([]byte{}, field()...)
		}
		b.Conds = append(b.Conds, cd)
	}
	for n := num(); n > 0 && !bad; n-- {
		kind := store.OpKind(one())
		op := store.Op{Kind: kind, Key: string(field())}
		if val := field(); kind == store.OpPut {
			op.Value = append([]byte{}, val...)
		}
		b.Ops = append(b.Ops, op)
	}
	if bad || len(v) != 0 {
		return ch, b, errBadChange
	}
	return ch, b, nil
}
