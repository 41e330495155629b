package admin

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
			&Route{Method: "GET", Path: path, Query: []string{"tag"}, Summary: "View the " + l.String() + " (by tag)", handle: h.viewList(l)},
			&Route{Method: "POST", Path: path, Action: "add_" + l.String(), MaxBody: MaxBulkBody, Summary: "Add an entry, or a JSON array of entries (bulk import), to the " + l.String(), handle: h.addList(l)},
			&Route{Method: "DELETE", Path: path, Query: []string{"tag"}, Action: "delete_" + l.String(), Summary: "Delete an entry (JSON body), or clear the " + l.String() + " by tag", handle: h.deleteList(l)},
		)
	}
	return append(out,
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
	return m
}

func (h *Handler) addList(l lists.List) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		body, err := c.requireBody()
		if err != nil {
			return nil, err
		}
		entries, bulk, err := lists.DecodeEntries(body, true, time.Now())
		if err != nil {
			return nil, err
		}
		if bulk {
			c.params = map[string]any{"bulk": len(entries)}
		} else {
			c.params = map[string]any{"entry": auditEntry(entries[0])}
		}
		var res lists.AddResult
		if bulk && c.txn == nil {
			// A bulk import commits itself, all or nothing, within the
			// store's limits (as a generation when it needs many batches),
			// taking effect on condition that no transaction is open.
			res, err = h.d.Lists.Import(c.ctx, l, entries, noTxn)
			err = c.refusedByTxn(err)
		} else {
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

func (h *Handler) viewList(l lists.List) func(c *call) (any, error) {
	return func(c *call) (any, error) {
		tag, err := parseTag(l, c.query.Get("tag"))
		if err != nil {
			return nil, err
		}
		r, loc := c.reader(), h.d.Config.Location
		// Each section is its own scan of the store, filtered by tag, so
		// the reply streams in constant memory.
		type section struct {
			key string
			tag *lists.Tag
		}
		var sections []section
		switch {
		case l == lists.Allow:
			sections = []section{{"whitelist", nil}}
		case tag != nil:
			sections = []section{{tag.String() + "_blacklist", tag}}
		default:
			for _, t := range lists.Tags() {
				t := t
				sections = append(sections, section{t.String() + "_blacklist", &t})
			}
		}
		return stream(func(w io.Writer) error {
			bw := bufio.NewWriterSize(w, 64<<10)
			bw.WriteString("{")
			for i, s := range sections {
				if i > 0 {
					bw.WriteString(",")
				}
				fmt.Fprintf(bw, "\n  %q: [", s.key)
				n := 0
				err := h.d.Lists.View(c.ctx, r, l, s.tag, func(e lists.Entry) error {
					we := wire.ListEntry{Type: e.Kind.String(), Name: e.Name, Value: e.Value}
					if !e.Expires.IsZero() {
						we.ExpiresAt = e.Expires.In(loc).Format(time.RFC3339)
					}
					b, _ := json.Marshal(we)
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
