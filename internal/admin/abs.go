package admin

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"time"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/behave"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/lists"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/units"
	"github.com/ase-project/ase/internal/wire"
)

// Behavioural detection (internal/behave): its two switches, the vendor
// ABS's attack list, and each API's state, policy and training.
func (h *Handler) absRoutes() []*Route {
	return []*Route{
		{Method: "GET", Path: "/firewall/abs", Summary: "Whether behavioural detection analyses traffic (the vendor's enable_abs)", handle: h.getABS},
		{Method: "POST", Path: "/firewall/abs", Query: []string{"status"}, Action: "update_abs", Summary: "Enable or disable behavioural detection", handle: h.setABS},
		{Method: "GET", Path: "/firewall/abs_attack", Summary: "Whether what behavioural detection finds is deny-listed (the vendor's enable_abs_attack)", handle: h.getABSAttack},
		{Method: "POST", Path: "/firewall/abs_attack", Query: []string{"status"}, Action: "update_abs_attack", Summary: "Enable or disable deny-listing what behavioural detection finds (disabled: reported only)", handle: h.setABSAttack},

		{Method: "GET", Path: "/abs/attacklist", Root: true, Query: []string{"earlier_date", "later_date", "status"},
			Summary: "The vendor ABS's attack list: clients behavioural detection found, active (deny-listed), expired or reported, newest first (earlier_date, later_date: RFC 3339 or yyyy-mm-ddThh:mm UTC; status: active, expired or reported)", handle: h.absAttackList},
		{Method: "DELETE", Path: "/abs/attacklist", Root: true, Action: "delete_abs_attacklist",
			Summary: "Remove behavioural detection's deny-list entries: all, by type, or single identities (never manual entries). A client found again is listed again: to stop that, allow-list it (POST /firewall/whitelist), which detection never observes", handle: h.deleteABSAttackList},

		{Method: "GET", Path: "/abs", Summary: "Behavioural detection: settings, tracked clients, and every API's training, modes and thresholds", handle: h.absInfo},
		{Method: "GET", Path: "/abs/{api_id}", Summary: "One API's behavioural detection: training, modes and thresholds", handle: h.absAPI},
		{Method: "PUT", Path: "/abs/{api_id}/policy", Action: "update_abs_policy", Summary: "Set an API's detection policy: a mode per detector (enforce, report, off) and threshold overrides per figure", handle: h.putABSPolicy},
		{Method: "DELETE", Path: "/abs/{api_id}/policy", Action: "update_abs_policy", Summary: "Reset an API's detection policy to the defaults (enforce, learned thresholds)", handle: h.deleteABSPolicy},
		{Method: "POST", Path: "/abs/{api_id}/retrain", Action: "retrain_abs", Summary: "Forget what an API learned and train it again, on every node", handle: h.retrainABS},
	}
}

func (h *Handler) getABS(c *call) (any, error) {
	return h.getSetting(c, catalog.ABS, h.d.Config.EnableABS)
}

func (h *Handler) setABS(c *call) (any, error) {
	return h.toggle(c, catalog.ABS, h.d.Config.EnableABS, "Behavioural detection")
}

func (h *Handler) getABSAttack(c *call) (any, error) {
	return h.getSetting(c, catalog.ABSAttack, h.d.Config.EnableABSAttack)
}

func (h *Handler) setABSAttack(c *call) (any, error) {
	return h.toggle(c, catalog.ABSAttack, h.d.Config.EnableABSAttack, "ABS attack")
}

func (h *Handler) getSetting(c *call, s catalog.Setting, def bool) (any, error) {
	on, err := catalog.GetSetting(c.ctx, c.reader(), s, def)
	if err != nil {
		return nil, err
	}
	return wire.Status{Status: enabledWord(on), Message: "Ok"}, nil
}

// absTimeLayouts are the times the attack list's dates are given in: RFC
// 3339, and the vendor's yyyy-mm-ddThh:mm (UTC), with seconds too.
var absTimeLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04", "2006-01-02T15:04:05"}

func parseABSTime(v string) (time.Time, bool) {
	for _, l := range absTimeLayouts {
		if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// absQuery is what an attack list asks for.
type absQuery struct {
	from, to   time.Time // zero: unbounded
	fromS, toS *string
	status     string // "" for all
}

func parseABSQuery(c *call) (absQuery, error) {
	var q absQuery
	for _, p := range []struct {
		name string
		t    *time.Time
		s    **string
	}{{"earlier_date", &q.from, &q.fromS}, {"later_date", &q.to, &q.toS}} {
		v, ok := c.query[p.name]
		if !ok {
			continue
		}
		t, ok := parseABSTime(v[0])
		if !ok {
			return q, invalidQuery(p.name, "an RFC 3339 time (2026-12-01T08:00:00Z) or yyyy-mm-ddThh:mm in UTC (2026-12-01T08:00)")
		}
		*p.t = t
		s := v[0]
		*p.s = &s
	}
	if !q.from.IsZero() && !q.to.IsZero() && q.to.Before(q.from) {
		return q, invalidQuery("later_date", "later_date is before earlier_date")
	}
	if v, ok := c.query["status"]; ok {
		switch v[0] {
		case wire.ABSActive, wire.ABSExpired, wire.ABSReported:
			q.status = v[0]
		default:
			return q, invalidQuery("status", "active, expired or reported")
		}
	}
	return q, nil
}

func (q *absQuery) within(t time.Time) bool {
	return (q.from.IsZero() || !t.Before(q.from)) && (q.to.IsZero() || !t.After(q.to))
}

// absItem is an attack list item with its time, for sorting.
type absItem struct {
	kind lists.Kind
	at   time.Time
	wire.ABSAttack
}

// identityKey names an identity the same way for list entries and
// detections.
func identityKey(k lists.Kind, name, value string) string {
	return k.String() + "\x00" + name + "\x00" + value
}

// setIdentity fills in the identity fields of item.
func setIdentity(a *wire.ABSAttack, k lists.Kind, name, value string) {
	switch k {
	case lists.IP:
		a.IP = value
	case lists.Cookie:
		a.CookieName, a.Cookie = name, value
	case lists.Token:
		a.Token = value
	case lists.APIKey:
		a.APIKeyName, a.APIKey = name, value
	case lists.Username:
		a.Username = value
	}
}

// absAttackList answers the vendor ABS's attack list: the deny list's
// abs_generated entries (every node's: the store is shared) are active;
// what any node detected (its last behave.FoundKept detections, in the
// store) and is not listed any more is expired (it was enforced) or
// reported (it never was).
func (h *Handler) absAttackList(c *call) (any, error) {
	q, err := parseABSQuery(c)
	if err != nil {
		return nil, err
	}
	loc := h.d.Config.Location
	if loc == nil {
		loc = time.UTC
	}
	format := func(t time.Time) string { return t.In(loc).Format(time.RFC3339) }
	var items []absItem
	active := map[string]bool{}
	tag := lists.ABSGenerated
	err = h.d.Lists.ViewWhere(c.ctx, c.reader(), lists.Deny, lists.Filter{Tag: &tag}, func(e lists.Entry) error {
		active[identityKey(e.Kind, e.Name, e.Value)] = true
		it := absItem{kind: e.Kind, at: e.Created}
		it.Status = wire.ABSActive
		setIdentity(&it.ABSAttack, e.Kind, e.Name, e.Value)
		if ev, ok := behave.ParseEvidence(e.Reason); ok {
			it.AttackType, it.Detector, it.APIName = ev.AttackType, ev.Detector, ev.API
			if t, err := time.Parse(time.RFC3339Nano, ev.Detected); err == nil {
				it.at = t
			}
			it.Evidence, _ = json.Marshal(ev)
		}
		if !e.Expires.IsZero() {
			s := format(e.Expires)
			it.Expires = &s
		}
		items = append(items, it)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Every node's last detections (the store's rings: a detection is
	// written there within moments of being made).
	foundItem := func(f behave.Found) {
		k := f.Kind()
		if active[identityKey(k, f.Name, f.Value)] {
			return // the active entry stands for it
		}
		it := absItem{kind: k, at: f.Detected}
		it.Status = wire.ABSReported
		if f.Mode == behave.Enforce.String() {
			it.Status = wire.ABSExpired
			if f.Expires != nil {
				s := format(*f.Expires)
				it.Expires = &s
			}
		}
		setIdentity(&it.ABSAttack, k, f.Name, f.Value)
		var ev behave.Evidence
		if json.Unmarshal(f.Evidence, &ev) == nil {
			it.AttackType, it.Detector, it.APIName = ev.AttackType, ev.Detector, ev.API
		}
		it.Evidence = f.Evidence
		items = append(items, it)
	}
	err = c.reader().Scan(c.ctx, behave.FoundPrefix, func(key string, value []byte) error {
		f, err := behave.DecodeFound(value)
		if err != nil {
			h.d.Log.Warn("ignoring a malformed detection record in the store", "key", key, "error", err)
			return nil
		}
		foundItem(f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(items, func(i, j int) bool { return items[i].at.After(items[j].at) })
	status := q.status
	if status == "" {
		status = "all"
	}
	out := wire.ABSAttackList{
		Name:        "api_attacklist",
		Description: "Clients behavioural detection found attacking APIs: active (on the deny list, tag abs_generated), expired (listed before, not any more) or reported (found by a detector in report mode, or with abs_attack disabled)",
		EarlierDate: q.fromS, LaterDate: q.toS, Status: status,
		IPs: []wire.ABSAttack{}, Cookies: []wire.ABSAttack{}, OAuthTokens: []wire.ABSAttack{}, APIKeys: []wire.ABSAttack{}, Usernames: []wire.ABSAttack{},
	}
	for _, it := range items {
		if q.status != "" && it.Status != q.status || !q.within(it.at) {
			continue
		}
		if !it.at.IsZero() {
			it.DetectedTime = format(it.at)
		}
		switch it.kind {
		case lists.IP:
			out.IPs = append(out.IPs, it.ABSAttack)
		case lists.Cookie:
			out.Cookies = append(out.Cookies, it.ABSAttack)
		case lists.Token:
			out.OAuthTokens = append(out.OAuthTokens, it.ABSAttack)
		case lists.APIKey:
			out.APIKeys = append(out.APIKeys, it.ABSAttack)
		case lists.Username:
			out.Usernames = append(out.Usernames, it.ABSAttack)
		}
	}
	return out, nil
}

// absTTL is how long a detected identity of kind k stays listed (0:
// until removed).
func (h *Handler) absTTL(k lists.Kind) time.Duration {
	cfg := h.d.Config
	switch k {
	case lists.IP:
		return cfg.ABSTTLIP.Std()
	case lists.Token:
		return cfg.ABSTTLToken.Std()
	case lists.Cookie:
		return cfg.ABSTTLCookie.Std()
	case lists.APIKey:
		return cfg.ABSTTLAPIKey.Std()
	case lists.Username:
		return cfg.ABSTTLUsername.Std()
	}
	return 0
}

// absKinds are the attack list's identity types, in its order, with the
// names of their keys in a delete's body.
var absKinds = []struct {
	kind lists.Kind
	key  string
}{{lists.IP, "ips"}, {lists.Cookie, "cookies"}, {lists.Token, "oauth_tokens"}, {lists.APIKey, "api_keys"}, {lists.Username, "usernames"}}

func (n *countsByKind) add(k lists.Kind) {
	switch k {
	case lists.IP:
		n.IPs++
	case lists.Cookie:
		n.Cookies++
	case lists.Token:
		n.OAuthTokens++
	case lists.APIKey:
		n.APIKeys++
	case lists.Username:
		n.Usernames++
	}
	n.Total++
}

type countsByKind wire.ABSCounts

// deleteABSAttackList removes behavioural detection's deny-list entries
// (tag abs_generated only) in one change: everything (lists.Clear by tag),
// whole types, or single identities (lists.Remove of each).
func (h *Handler) deleteABSAttackList(c *call) (any, error) {
	var req wire.ABSDelete
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	all := map[lists.Kind]bool{
		lists.IP: req.DeleteAllIPs, lists.Cookie: req.DeleteAllCookies, lists.Token: req.DeleteAllOAuthTokens,
		lists.APIKey: req.DeleteAllAPIKeys, lists.Username: req.DeleteAllUsernames,
	}
	// The identities named, checked as list entries are.
	named := map[string]lists.Kind{}
	var audited []map[string]any
	addNamed := func(field string, i int, k lists.Kind, name, value string) error {
		typ := k.String()
		var nameP *string
		if k == lists.Cookie || k == lists.APIKey {
			nameP = &name
		}
		if k == lists.IP {
			a, err := netip.ParseAddr(value)
			if err != nil {
				return fail(http.StatusForbidden, wire.StatusValidation, "%s[%d]: %q is not an IP address", field, i, value)
			}
			value = a.Unmap().String()
		}
		e, err := lists.ParseCheck(typ, nameP, value)
		if err != nil {
			return fail(http.StatusForbidden, wire.StatusValidation, "%s[%d]: %v", field, i, err)
		}
		named[identityKey(k, e.Name, e.Value)] = k
		audited = append(audited, auditEntry(e))
		return nil
	}
	for i, v := range req.IPs {
		if err := addNamed("ips", i, lists.IP, "", v); err != nil {
			return nil, err
		}
	}
	for i, v := range req.Cookies {
		if err := addNamed("cookies", i, lists.Cookie, v.Name, v.Value); err != nil {
			return nil, err
		}
	}
	for i, v := range req.OAuthTokens {
		if err := addNamed("oauth_tokens", i, lists.Token, "", v); err != nil {
			return nil, err
		}
	}
	for i, v := range req.APIKeys {
		if err := addNamed("api_keys", i, lists.APIKey, v.Name, v.Value); err != nil {
			return nil, err
		}
	}
	for i, v := range req.Usernames {
		if err := addNamed("usernames", i, lists.Username, "", v); err != nil {
			return nil, err
		}
	}
	everything := req.DeleteAll || all[lists.IP] && all[lists.Cookie] && all[lists.Token] && all[lists.APIKey] && all[lists.Username]
	anyAll := false
	for _, on := range all {
		anyAll = anyAll || on
	}
	if !everything && !anyAll && len(named) == 0 {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "give delete_all, a delete_all_<type> (ips, cookies, oauth_tokens, api_keys, usernames), or the identities to delete (ips, cookies, oauth_tokens, api_keys, usernames)")
	}
	params := map[string]any{}
	if everything {
		params["delete_all"] = true
	} else {
		for _, k := range absKinds {
			if all[k.kind] {
				params["delete_all_"+k.key] = true
			}
		}
		if len(audited) > 0 {
			params["entries"] = audited
		}
	}
	c.params = params

	// What goes: every abs_generated entry of a type deleted whole, and
	// the named ones that are abs_generated entries.
	tag := lists.ABSGenerated
	var removed countsByKind
	var doomed []lists.Entry
	err := h.d.Lists.ViewWhere(c.ctx, c.reader(), lists.Deny, lists.Filter{Tag: &tag}, func(e lists.Entry) error {
		if everything || all[e.Kind] {
			removed.add(e.Kind)
			doomed = append(doomed, e)
			return nil
		}
		if _, ok := named[identityKey(e.Kind, e.Name, e.Value)]; ok {
			removed.add(e.Kind)
			doomed = append(doomed, e)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var b store.Batch
	if everything {
		// Past one batch of the store, Clear commits the leading ones
		// itself, each on condition that no transaction is open.
		if b, err = h.d.Lists.Clear(c.ctx, c.reader(), lists.Deny, &tag, noTxn); err != nil {
			return nil, c.refusedByTxn(err)
		}
	} else {
		for _, e := range doomed {
			one, err := h.d.Lists.Remove(c.ctx, c.reader(), lists.Deny, e)
			var absent *lists.AbsentError
			if errors.As(err, &absent) {
				continue // expired or removed meanwhile
			}
			if err != nil {
				return nil, err
			}
			b.Conds = append(b.Conds, one.Conds...)
			b.Ops = append(b.Ops, one.Ops...)
		}
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	n := wire.ABSCounts(removed)
	params["removed"] = n
	return wire.ABSDeleted{Status: wire.StatusSuccess, Message: fmt.Sprintf("%d entries deleted from the attack list", n.Total), Removed: n}, nil
}

// absAPIID reads the {api_id} path parameter; it starts the audit
// parameters.
func (c *call) absAPIID() (string, error) {
	id := c.params1("api_id")
	if err := apidef.CheckID(id); err != nil {
		return "", fail(http.StatusForbidden, wire.StatusValidation, "%v", err)
	}
	c.params = map[string]any{"api_id": id}
	return id, nil
}

func apiNotFound(id string) *Error {
	return fail(http.StatusNotFound, wire.StatusAPINotFound, "api %s does not exist", id)
}

// absAPIExists reports api id's absence as the API endpoints do.
func (c *call) absAPIExists(id string) error {
	_, err := catalog.GetAPI(c.ctx, c.reader(), id)
	if errors.Is(err, catalog.ErrAPINotFound) {
		return apiNotFound(id)
	}
	return err
}

func wireABSStatus(s behave.APIStatus) wire.ABSAPIStatus {
	out := wire.ABSAPIStatus{APIID: s.API, Training: s.Training, Modes: s.Modes, Figures: []wire.ABSFigure{}}
	if !s.TrainingUntil.IsZero() {
		out.TrainingUntil = s.TrainingUntil.UTC().Format(time.RFC3339)
	}
	for _, f := range s.Figures {
		out.Figures = append(out.Figures, wire.ABSFigure{Identity: f.Identity, Figure: f.Figure, Detector: f.Detector, Windows: f.Windows,
			Learned: f.Learned, Threshold: f.Threshold, Override: f.Override, Rule: f.Rule})
	}
	return out
}

func (h *Handler) absInfo(c *call) (any, error) {
	cfg := h.d.Config
	enabled, err := catalog.GetSetting(c.ctx, c.reader(), catalog.ABS, cfg.EnableABS)
	if err != nil {
		return nil, err
	}
	enforcing, err := catalog.GetSetting(c.ctx, c.reader(), catalog.ABSAttack, cfg.EnableABSAttack)
	if err != nil {
		return nil, err
	}
	ttl := func(d time.Duration) string {
		if d == 0 {
			return "0" // never expires, as ase.conf says it
		}
		return units.Duration(d).String()
	}
	out := wire.ABSInfo{
		Enabled: enabled, Enforcing: enforcing,
		TrainingPeriod: cfg.ABSTraining.String(), Window: cfg.ABSWindow.String(), MaxClients: cfg.ABSMaxClients,
		TTL: map[string]string{}, APIs: []wire.ABSAPIStatus{},
	}
	for _, k := range absKinds {
		out.TTL[k.kind.String()] = ttl(h.absTTL(k.kind))
	}
	if h.d.Behave != nil {
		out.TrackedClients = h.d.Behave.Tracked()
		all, _ := h.d.Behave.Status("")
		for _, s := range all {
			out.APIs = append(out.APIs, wireABSStatus(s))
		}
	}
	return out, nil
}

func (h *Handler) absAPI(c *call) (any, error) {
	id, err := c.absAPIID()
	if err != nil {
		return nil, err
	}
	if err := c.absAPIExists(id); err != nil {
		return nil, err
	}
	if h.d.Behave == nil {
		return nil, apiNotFound(id)
	}
	s, ok := h.d.Behave.Status(id)
	if !ok || len(s) == 0 {
		// Defined a moment ago: detection follows the catalog shortly.
		return nil, apiNotFound(id)
	}
	return wireABSStatus(s[0]), nil
}

func policyReply(id, msg string, p behave.Policy) wire.ABSPolicyReply {
	var wp wire.ABSPolicy
	json.Unmarshal(p.Encode(), &wp)
	return wire.ABSPolicyReply{Status: wire.StatusSuccess, Message: msg, APIID: id, Policy: wp}
}

func (h *Handler) putABSPolicy(c *call) (any, error) {
	id, err := c.absAPIID()
	if err != nil {
		return nil, err
	}
	if err := c.absAPIExists(id); err != nil {
		return nil, err
	}
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		var typeErr *json.UnmarshalTypeError
		if !errors.As(err, &typeErr) {
			return nil, fail(http.StatusForbidden, wire.StatusFail, "json parsing error").withDetail(err.Error())
		}
	} else {
		c.params["policy"] = doc
	}
	p, err := behave.DecodePolicy(body)
	if err != nil {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "%v", err)
	}
	// Stored on condition that the API still exists.
	b := store.Batch{Conds: []store.Cond{store.Present(catalog.APIPrefix + id)}, Ops: []store.Op{store.Put(behave.PolicyPrefix+id, p.Encode())}}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return policyReply(id, "detection policy of api "+id+" updated", p), nil
}

func (h *Handler) deleteABSPolicy(c *call) (any, error) {
	id, err := c.absAPIID()
	if err != nil {
		return nil, err
	}
	if err := c.absAPIExists(id); err != nil {
		return nil, err
	}
	b := store.Batch{Conds: []store.Cond{store.Present(catalog.APIPrefix + id)}, Ops: []store.Op{store.Delete(behave.PolicyPrefix + id)}}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return policyReply(id, "detection policy of api "+id+" reset to the defaults", behave.Policy{}), nil
}

// retrainABS forgets what api id learned: deleting it from the store makes
// every node train the API again. When nothing was stored (still
// training, or the node could not store it), this node starts again.
func (h *Handler) retrainABS(c *call) (any, error) {
	id, err := c.absAPIID()
	if err != nil {
		return nil, err
	}
	if err := c.absAPIExists(id); err != nil {
		return nil, err
	}
	_, err = c.reader().Get(c.ctx, behave.LearnedPrefix+id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if h.d.Behave != nil {
			h.d.Behave.Retrain(id)
		}
	case err != nil:
		return nil, err
	default:
		b := store.Batch{Conds: []store.Cond{store.Present(catalog.APIPrefix + id)}, Ops: []store.Op{store.Delete(behave.LearnedPrefix + id)}}
		if err := c.commit(b); err != nil {
			return nil, err
		}
	}
	return success("api " + id + " is training again"), nil
}
