package admin

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/wire"
)

func (h *Handler) listRoutes() []*Route {
	var out []*Route
	for _, l := range []lists.List{lists.Deny, lists.Allow} {
		path := "/firewall/" + l.String()
		out = append(out,
			&Route{Method: "GET", Path: path, Query: []string{"tag", "type", "value", "limit", "cursor"}, Summary: "View the " + l.String() + " (by tag, type and value; in pages with limit and cursor)", handle: h.viewList(l)},
			&Route{Method: "POST", Path: path, Query: []string{"ttl", "reason"}, Text: true, Action: "add_" + l.String(), MaxBody: MaxBulkBody, Summary: "Add an entry, or a JSON array of entries or a plain-text feed (bulk import), to the " + l.String(), handle: h.addList(l)},
			&Route{Method: "DELETE", Path: path, Query: []string{"tag"}, Action: "delete_" + l.String(), Summary: "Delete an entry (JSON body), or clear the " + l.String() + " by tag", handle: h.deleteList(l)},
		)
	}
	return append(out,
		&Route{Method: "GET", Path: "/firewall/check", Query: []string{"type", "name", "value"}, Summary: "Whether a client identity is allowed or denied by the lists, and by which entries", handle: h.check},
		&Route{Method: "GET", Path: "/firewall/ase_detected_attack", Summary: "Whether ASE-detected attacks put clients on the deny list", handle: h.getDetected},
		&Route{Method: "POST", Path: "/firewall/ase_detected_attack", Query: []string{"status"}, Action: "update_ase_detected_attack", Summary: "Enable or disable ASE-detected attacks (disabling removes the entries they added)", handle: h.setDetected},
	)
}

// auditEntry is how an entry appears in the audit log: tokens, cookies and
// API keys are credentials, so their values are replaced by a fingerprint
// that correlates without revealing.
func auditEntry(e lists.Entry) map[string]any {
	m := map[string]any{"type": e.Kind.String()}
	if e.Name != "" {
		m["name"] = e.Name
	}
	switch e.Kind {
	case lists.IP, lists.Username:
		m["value"] = e.Value
	default:
		sum := sha256.Sum256([]byte(e.Value))
		m["value_sha256"] = hex.EncodeToString(sum[:8])
	}
	if !e.Expires.IsZero() {
		m["expires_at"] = e.Expires.UTC().Format(time.RFC3339)
	}
	if e.Reason != "" {
		m["reason"] = e.Reason
	}
	return m
}

// addDefaults reads the ttl and reason query parameters of an add: the
// TTL and reason of the entries that carry none of their own (all of a
// plain-text feed's).
func (c *call) addDefaults() (lists.Defaults, error) {
	var d lists.Defaults
	if v, ok := c.query["ttl"]; ok {
		secs, err := lists.ParseTTL(v[0])
		if err != nil {
			return d, fail(http.StatusForbidden, wire.StatusValidation, "query parameter ttl: %v", err)
		}
		d.TTL = secs
	}
	if v, ok := c.query["reason"]; ok {
		if err := lists.CheckReason(v[0]); err != nil {
			return d, fail(http.StatusForbidden, wire.StatusValidation, "query parameter reason: %v", err)
		}
		d.Reason = v[0]
	}
	return d, nil
}

// isText reports whether the request's body is plain text (a feed).
func (c *call) isText() bool {
	mt, _, _ := mime.ParseMediaType(c.r.Header.Get("Content-Type"))
	return mt == "text/plain"
}

func (h *Handler) addList(l lists.List) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		body, err := c.requireBody()
		if err != nil {
			return nil, err
		}
		d, err := c.addDefaults()
		if err != nil {
			return nil, err
		}
		// A bulk import is checked whole, then decoded again as it is
		// written: its entries are never all in memory.
		var entries []lists.Entry
		var blk *lists.Bulk
		bulk := true
		switch now := time.Now(); {
		case c.isText():
			// JSON sent as text is the vendor's missing content type, not
			// a feed with a bad first line.
			if t := bytes.TrimLeft(bytes.TrimPrefix(body, []byte("\xef\xbb\xbf")), " \t\r\n"); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
				return nil, fail(http.StatusForbidden, wire.StatusFail, "content-type header missing")
			}
			blk, err = lists.ParseBulk(body, true, now, d)
		case lists.IsArray(body):
			blk, err = lists.ParseBulk(body, false, now, d)
		default:
			entries, bulk, err = lists.DecodeEntriesWith(body, true, now, d)
		}
		if err != nil {
			return nil, err
		}
		if bulk {
			c.params = map[string]any{"bulk": blk.Len()}
			if c.isText() {
				c.params["format"] = "text"
			}
			if d.TTL > 0 {
				c.params["ttl"] = lists.FormatTTL(d.TTL)
			}
			if d.Reason != "" {
				c.params["reason"] = d.Reason
			}
		} else {
			c.params = map[string]any{"entry": auditEntry(entries[0])}
		}
		var res lists.AddResult
		if bulk && c.txn == nil {
			// A bulk import commits itself, all or nothing, within the
			// store's limits (as a generation when it needs many batches),
			// taking effect on condition that no transaction is open.
			res, err = h.d.Lists.ImportFrom(c.ctx, l, blk, noTxn)
			err = c.refusedByTxn(err)
		} else {
			if bulk { // staged in the transaction, whole
				entries = slices.Collect(blk.All())
			}
			var b store.Batch
			if b, res, err = h.d.Lists.Add(c.ctx, c.reader(), l, entries, bulk); err == nil {
				err = c.commit(b)
			}
		}
		if err != nil {
			return nil, err
		}
		if !bulk {
			return success(entries[0].Describe() + " added to " + l.String()), nil
		}
		c.params["added"], c.params["skipped"] = res.Added, res.Skipped
		return success(fmt.Sprintf("%d entries added to %s, %d already listed", res.Added, l, res.Skipped)), nil
	}
}

func (h *Handler) deleteList(l lists.List) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		if tag, given := c.query["tag"]; given {
			if len(c.body) > 0 {
				return nil, fail(http.StatusForbidden, wire.StatusValidation, "give either an entry in the body or ?tag= to clear, not both")
			}
			t, err := parseTag(l, tag[0])
			if err != nil {
				return nil, err
			}
			c.params = map[string]any{"tag": tag[0]}
			// Past one batch of the store, Clear commits the leading ones
			// itself, each on condition that no transaction is open.
			b, err := h.d.Lists.Clear(c.ctx, c.reader(), l, t, noTxn)
			if err != nil {
				return nil, c.refusedByTxn(err)
			}
			if err := c.commit(b); err != nil {
				return nil, err
			}
			return success(map[lists.List]string{lists.Deny: "Blacklist cleared", lists.Allow: "Whitelist cleared"}[l]), nil
		}
		if len(c.body) == 0 {
			return nil, fail(http.StatusForbidden, wire.StatusValidation, "give the entry to delete as a JSON body, or ?tag= to clear (tag=all clears everything)")
		}
		entries, _, err := lists.DecodeEntries(c.body, false, time.Now())
		if err != nil {
			return nil, err
		}
		e := entries[0]
		c.params = map[string]any{"entry": auditEntry(e)}
		b, err := h.d.Lists.Remove(c.ctx, c.reader(), l, e)
		if err != nil {
			return nil, err
		}
		if err := c.commit(b); err != nil {
			return nil, err
		}
		return success(e.Describe() + " deleted from " + l.String()), nil
	}
}

// parseTag reads ?tag=: nil for "all" (or absent). The allow list has no
// tags but "all".
func parseTag(l lists.List, s string) (*lists.Tag, error) {
	if s == "all" || s == "" {
		return nil, nil
	}
	if t, ok := lists.ParseTag(s); ok && l == lists.Deny {
		return &t, nil
	}
	return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter tag contains invalid value")
}

// stream is a handler result written incrementally: views of lists with
// millions of entries never sit whole in memory.
type stream func(w io.Writer) error

// defaultPage is the size of a page when a cursor comes without a limit.
const defaultPage = 100

// viewQuery is what a view asks for.
type viewQuery struct {
	filter lists.Filter
	paged  bool // limit or cursor given: one page
	limit  int
	cursor string // a store key; "" for the start
}

func invalidQuery(name, detail string) *Error {
	return fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter %s contains invalid value", name).withDetail(detail)
}

// parseView reads a view's query parameters: tag, type, value, limit and
// cursor.
func parseView(c *call, l lists.List) (viewQuery, error) {
	var q viewQuery
	tag, err := parseTag(l, c.query.Get("tag"))
	if err != nil {
		return q, err
	}
	q.filter.Tag = tag
	if v, ok := c.query["type"]; ok {
		k, known := lists.ParseKind(v[0])
		if !known {
			return q, invalidQuery("type", "ip, token, cookie, api_key or username")
		}
		q.filter.Kind = k
	}
	q.filter.Value = c.query.Get("value")
	if v, ok := c.query["limit"]; ok {
		n, err := strconv.Atoi(v[0])
		if err != nil || n < 1 || n > lists.MaxPage {
			return q, invalidQuery("limit", fmt.Sprintf("a whole number from 1 to %d", lists.MaxPage))
		}
		q.paged, q.limit = true, n
	}
	if v, ok := c.query["cursor"]; ok {
		key, err := lists.DecodeCursor(l, v[0])
		if err != nil {
			return q, invalidQuery("cursor", "give the next_cursor of a page of this list")
		}
		q.paged, q.cursor = true, key
		if q.limit == 0 {
			q.limit = defaultPage
		}
	}
	return q, nil
}

// wireEntry is an entry as views and checks show it, its times in the
// configured timezone.
func wireEntry(e lists.Entry, loc *time.Location) wire.ListEntry {
	we := wire.ListEntry{Type: e.Kind.String(), Name: e.Name, Value: e.Value, Tag: e.Tag.String(), Reason: e.Reason}
	if !e.Created.IsZero() {
		we.CreatedAt = e.Created.In(loc).Format(time.RFC3339)
	}
	if !e.Expires.IsZero() {
		we.ExpiresAt = e.Expires.In(loc).Format(time.RFC3339)
	}
	return we
}

// section is one key of a view: a tag's entries, or the whole allow list.
type section struct {
	key string
	tag *lists.Tag
}

// sections are a view's keys, in the vendor's order.
func sections(l lists.List, tag *lists.Tag) []section {
	switch {
	case l == lists.Allow:
		return []section{{"whitelist", nil}}
	case tag != nil:
		return []section{{tag.String() + "_blacklist", tag}}
	}
	var out []section
	for _, t := range lists.Tags() {
		t := t
		out = append(out, section{t.String() + "_blacklist", &t})
	}
	return out
}

// viewList answers the vendor's view: every entry (with tag=, by tag),
// streamed; or, with limit or cursor, one page, in the same shape plus
// next_cursor while there are more.
func (h *Handler) viewList(l lists.List) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		q, err := parseView(c, l)
		if err != nil {
			return nil, err
		}
		r, loc := c.reader(), h.d.Config.Location
		secs := sections(l, q.filter.Tag)
		if q.paged {
			return h.viewPage(c, l, q, secs)
		}
		// Each section is its own scan of the store, filtered by tag, so
		// the reply streams in constant memory.
		return stream(func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 64<<10)
			bw.WriteString("{")
			for i, s := range secs {
				if i > 0 {
					bw.WriteString(",")
				}
				fmt.Fprintf(bw, "\n  %q: [", s.key)
				n := 0
				f := q.filter
				f.Tag = s.tag
				err := h.d.Lists.ViewWhere(c.ctx, r, l, f, func(e lists.Entry) error {
					b, _ := json.Marshal(wireEntry(e, loc))
					if n > 0 {
						bw.WriteString(",")
					}
					bw.WriteString("\n    ")
					bw.Write(b)
					n++
					return nil
				})
				if err != nil {
					return err
				}
				if n > 0 {
					bw.WriteString("\n  ")
				}
				bw.WriteString("]")
			}
			bw.WriteString("\n}\n")
			return bw.Flush()
		}), nil
	}
}

// viewPage answers one page of a view: the entries that follow the cursor
// in store order, by section.
func (h *Handler) viewPage(c *call, l lists.List, q viewQuery, secs []section) (any, error) {
	v := wire.ListView{Sections: map[string][]wire.ListEntry{}}
	for _, s := range secs {
		v.Order = append(v.Order, s.key)
		v.Sections[s.key] = []wire.ListEntry{}
	}
	next, err := h.d.Lists.Page(c.ctx, c.reader(), l, q.filter, q.cursor, q.limit, func(e lists.Entry) error {
		key := "whitelist"
		if l == lists.Deny {
			key = e.Tag.String() + "_blacklist"
		}
		v.Sections[key] = append(v.Sections[key], wireEntry(e, h.d.Config.Location))
		return nil
	})
	if err != nil {
		return nil, err
	}
	v.NextCursor = lists.EncodeCursor(next)
	return v, nil
}

// check answers "why is this client blocked?": what each list holds about
// one identity, and which entry decides, as decisions do (the allow list
// wins). It reads what is enforced, not what an open transaction staged.
func (h *Handler) check(c *call) (any, error) {
	typ, ok := c.query["type"]
	if !ok {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "query parameter type is required (ip, token, cookie, api_key or username)")
	}
	if _, known := lists.ParseKind(typ[0]); !known {
		return nil, invalidQuery("type", "ip, token, cookie, api_key or username")
	}
	value, ok := c.query["value"]
	if !ok {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "query parameter value is required")
	}
	var name *string
	if v, ok := c.query["name"]; ok {
		name = &v[0]
	}
	id, err := lists.ParseCheck(typ[0], name, value[0])
	if err != nil {
		return nil, err
	}
	res, err := h.d.Lists.Check(c.ctx, id)
	if err != nil {
		return nil, err
	}
	firewall := h.d.Config.EnableFirewall
	if h.d.Live != nil {
		firewall = h.d.Live.Setting(catalog.Firewall)
	}
	loc := h.d.Config.Location
	out := wire.Check{Type: id.Kind.String(), Name: id.Name, Value: id.Value, Verdict: wire.VerdictNotListed,
		Firewall: enabledWord(firewall), Whitelist: []wire.ListEntry{}, Blacklist: []wire.ListEntry{}}
	for _, e := range res.Allow {
		out.Whitelist = append(out.Whitelist, wireEntry(e, loc))
	}
	for _, e := range res.Deny {
		out.Blacklist = append(out.Blacklist, wireEntry(e, loc))
	}
	if list, e, ok := res.Decides(); ok {
		we := wireEntry(e, loc)
		out.Verdict, out.List, out.Entry = wire.VerdictDenied, list.String(), &we
		if list == lists.Allow {
			out.Verdict = wire.VerdictAllowed
		}
	}
	return out, nil
}

func (h *Handler) getDetected(c *call) (any, error) {
	on, err := catalog.GetSetting(c.ctx, c.reader(), catalog.ASEDetectedAttack, h.d.Config.EnableASEDetectedAttack)
	if err != nil {
		return nil, err
	}
	return wire.Status{Status: enabledWord(on), Message: "Ok"}, nil
}

func (h *Handler) setDetected(c *call) (any, error) {
	// Disabling also removes every entry detected attacks added, in the
	// same atomic change (the vendor's behaviour).
	return h.toggleWith(c, catalog.ASEDetectedAttack, h.d.Config.EnableASEDetectedAttack, "ASE detected attack", func(on bool) (store.Batch, error) {
		if on {
			return store.Batch{}, nil
		}
		b, err := h.d.Lists.RemoveDetected(c.ctx, c.reader(), noTxn)
		return b, c.refusedByTxn(err)
	})
}
