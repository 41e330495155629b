package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/store"
	"github.com/ase-project/ase/internal/units"
	"github.com/ase-project/ase/internal/wire"
)

// table is the management API: every route, once.
func (h *Handler) table() []*Route {
	return []*Route{
		{Method: "GET", Path: "/api", Query: []string{"api_id"}, Summary: "List APIs, or read one API's definition with api_id", handle: h.getAPI},
		{Method: "POST", Path: "/api", Query: []string{"api_id"}, Action: "create_api", Summary: "Create an API", handle: h.createAPI},
		{Method: "PUT", Path: "/api", Query: []string{"api_id"}, Action: "update_api", Summary: "Replace an API's definition", handle: h.updateAPI},
		{Method: "DELETE", Path: "/api", Query: []string{"api_id"}, Action: "delete_api", Summary: "Delete an API", handle: h.deleteAPI},

		{Method: "GET", Path: "/server", Query: []string{"api_id"}, Summary: "List an API's backend servers with their health", handle: h.listServers},
		{Method: "POST", Path: "/server", Query: []string{"api_id"}, Action: "add_server", Summary: "Add a backend server to an API", handle: h.addServer},
		{Method: "DELETE", Path: "/server", Query: []string{"api_id"}, Action: "delete_server", Summary: "Remove a backend server from an API", handle: h.deleteServer},

		{Method: "GET", Path: "/cluster", Summary: "Cluster nodes", handle: h.cluster},
		{Method: "GET", Path: "/persistentconnection", Query: []string{"api_id"}, Summary: "Live WebSocket connection counts of an API", handle: h.persistentConnections},

		{Method: "GET", Path: "/firewall", Summary: "Firewall status", handle: h.getFirewall},
		{Method: "POST", Path: "/firewall", Query: []string{"status"}, Action: "update_firewall", Summary: "Enable or disable the firewall", handle: h.setFirewall},
		{Method: "GET", Path: "/firewall/flowcontrol", Query: []string{"api_id"}, Summary: "Read an API's flow control", handle: h.getFlowControl},
		{Method: "POST", Path: "/firewall/flowcontrol", Query: []string{"api_id"}, Action: "update_flow_control", Summary: "Update an API's flow control", handle: h.setFlowControl},
		{Method: "POST", Path: "/firewall/flowcontrol/server", Query: []string{"api_id"}, Action: "update_server_flow_control", Summary: "Update one server's quota and spike threshold", handle: h.setServerFlowControl},

		{Method: "GET", Path: "/status", Summary: "What `ase status` prints", handle: h.status},
		{Method: "GET", Path: "/metrics", Summary: "Prometheus metrics (text format)", handle: h.metrics},
		{Method: "GET", Path: "/activity", Query: []string{"api_id", "since"}, Summary: "Requests by API, decision and reason in 5-second steps over the last hour (since: only the steps that ended after this RFC 3339 time or Unix second)", handle: h.activity},
		{Method: "GET", Path: "/audit", Query: []string{"user", "action", "limit", "before"}, Summary: "The audit log, newest first (user, action: only these; limit: 1 to 1000, default 100; before: the next cursor of the page before)", handle: h.readAudit},
		{Method: "GET", Path: "/openapi.json", Public: true, Summary: "This API's OpenAPI 3 description", handle: h.openAPI},
		{Method: "PUT", Path: "/password", Action: "update_password", Summary: "Change the admin password (the CLI's update_password)", handle: h.updatePassword},
		{Method: "POST", Path: "/reload", Action: "reload", AdminOnly: true, Summary: "Re-read ase.conf and api_dir, apply what can change without a restart (the CLI's reload)", handle: h.reload},
	}
}

func (h *Handler) getAPI(c *call) (any, error) {
	if _, given := c.query["api_id"]; !given {
		apis, err := catalog.ListAPIs(c.ctx, c.reader())
		if err != nil {
			return nil, err
		}
		list := wire.APIList{APICount: strconv.Itoa(len(apis)), API: []wire.APIListEntry{}}
		for _, a := range apis {
			list.API = append(list.API, wire.APIListEntry{APIID: a.ID, Status: "loaded"})
		}
		return list, nil
	}
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	a, err := catalog.GetAPI(c.ctx, c.reader(), id)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(a.Encode()), nil
}

// decodeAPI decodes the body as api id's definition and records it for the
// audit log.
func (c *call) decodeAPI(id string) (*apidef.API, error) {
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil {
		c.params["definition"] = doc
	}
	return apidef.Decode(id, body)
}

func (h *Handler) createAPI(c *call) (any, error) { return h.putAPI(c, false) }

func (h *Handler) updateAPI(c *call) (any, error) { return h.putAPI(c, true) }

// putAPI creates an API, or replaces an existing one (update: an absent
// API is reported before its definition is validated).
func (h *Handler) putAPI(c *call, update bool) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	put := catalog.CreateAPI
	if update {
		if _, err := catalog.GetAPI(c.ctx, c.reader(), id); err != nil {
			return nil, err
		}
		put = catalog.UpdateAPI
	}
	a, err := c.decodeAPI(id)
	if err != nil {
		return nil, err
	}
	b, err := put(c.ctx, c.reader(), a)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	if len(a.Ignored) > 0 {
		// Vendor fields accepted but meaning nothing here, said once to
		// whoever sent them (and logged when the API is loaded).
		return map[string]any{"status": wire.StatusSuccess, "status_message": "success", "ignored": a.Ignored}, nil
	}
	return success("success"), nil
}

func (h *Handler) deleteAPI(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	b, err := catalog.DeleteAPI(c.ctx, c.reader(), id)
	if err != nil {
		return nil, err
	}
	return success("success"), c.commit(b)
}

func (h *Handler) listServers(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	a, err := catalog.GetAPI(c.ctx, c.reader(), id)
	if err != nil {
		return nil, err
	}
	list := wire.ServerList{APIID: id, ServerCount: len(a.Servers), Server: []wire.Server{}}
	for _, s := range a.Servers {
		ws := a.WireServer(s)
		ws.HealthStatus = wire.HealthUp // health_check off: always Up
		if a.HealthCheck {
			ws.HealthStatus = h.d.Health(id, s) // Unknown until the first probe answers
		}
		list.Server = append(list.Server, ws)
	}
	return list, nil
}

// decodeServer decodes {"server": {...}} for api id (whose protocol
// decides the fields allowed) and records it for the audit log.
func (c *call) decodeServer(id string, full bool) (apidef.Server, error) {
	p, err := catalog.ServerProtocol(c.ctx, c.reader(), id)
	if err != nil {
		return apidef.Server{}, err
	}
	body, err := c.requireBody()
	if err != nil {
		return apidef.Server{}, err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil {
		c.params["server"] = doc["server"]
	}
	return apidef.DecodeServer(p, body, full)
}

func (h *Handler) addServer(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	s, err := c.decodeServer(id, true)
	if err != nil {
		return nil, err
	}
	b, err := catalog.AddServer(c.ctx, c.reader(), id, s)
	if err != nil {
		return nil, err
	}
	return success("success"), c.commit(b)
}

func (h *Handler) deleteServer(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	s, err := c.decodeServer(id, false)
	if err != nil {
		return nil, err
	}
	b, err := catalog.DeleteServer(c.ctx, c.reader(), id, s.Host, s.Port)
	if err != nil {
		return nil, err
	}
	return success("success"), c.commit(b)
}

func (h *Handler) cluster(c *call) (any, error) {
	// Cluster mode (etcd) answers with the node list; a standalone node
	// says so, as the vendor's does.
	if h.d.Cluster == nil {
		return nil, fail(http.StatusNotFound, wire.StatusNoClusterMode, "ase is not in cluster mode")
	}
	return h.d.Cluster(c.ctx)
}

func (h *Handler) persistentConnections(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	if _, err := catalog.GetAPI(c.ctx, c.reader(), id); err != nil {
		return nil, err
	}
	return wire.PersistentConnections{APIID: id, Count: h.d.Connections(id)}, nil
}

func (h *Handler) getFirewall(c *call) (any, error) {
	on, err := catalog.GetSetting(c.ctx, c.reader(), catalog.Firewall, h.d.Config.EnableFirewall)
	if err != nil {
		return nil, err
	}
	return wire.Status{Status: enabledWord(on), Message: "Ok"}, nil
}

func (h *Handler) setFirewall(c *call) (any, error) {
	return h.toggle(c, catalog.Firewall, h.d.Config.EnableFirewall, "Firewall")
}

// toggle implements the vendor's ?status=enable|disable switches: "X is
// now enabled" on a change, "X is already enabled" otherwise.
func (h *Handler) toggle(c *call, s catalog.Setting, def bool, name string) (any, error) {
	return h.toggleWith(c, s, def, name, nil)
}

// toggleWith is toggle with more changes (from also) applied atomically
// with the switch when it changes.
func (h *Handler) toggleWith(c *call, s catalog.Setting, def bool, name string, also func(on bool) (store.Batch, error)) (any, error) {
	v := c.query.Get("status")
	c.params = map[string]any{"status": v}
	var on bool
	switch v {
	case "enable":
		on = true
	case "disable":
	default:
		return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter status contains invalid value")
	}
	cur, err := catalog.GetSetting(c.ctx, c.reader(), s, def)
	if err != nil {
		return nil, err
	}
	if cur == on {
		return wire.Status{Status: enabledWord(on), Message: name + " is already " + enabledWord(on)}, nil
	}
	b := catalog.SetSetting(s, on)
	if also != nil {
		more, err := also(on)
		if err != nil {
			return nil, err
		}
		b.Conds = append(b.Conds, more.Conds...)
		b.Ops = append(b.Ops, more.Ops...)
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return wire.Status{Status: enabledWord(on), Message: name + " is now " + enabledWord(on)}, nil
}

func enabledWord(on bool) string {
	if on {
		return wire.StatusEnabled
	}
	return wire.StatusDisabled
}

func (h *Handler) getFlowControl(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	a, err := catalog.GetAPI(c.ctx, c.reader(), id)
	if err != nil {
		return nil, err
	}
	return wire.FlowControlInfo{APIID: id, FlowControl: a.WireFlowControl()}, nil
}

func (h *Handler) setFlowControl(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	if _, err := catalog.GetAPI(c.ctx, c.reader(), id); err != nil {
		return nil, err
	}
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil {
		c.params["flow_control"] = doc["flow_control"]
	}
	a, b, err := catalog.UpdateFlowControl(c.ctx, c.reader(), id, body)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return wire.FlowControlInfo{APIID: id, FlowControl: a.WireFlowControl()}, nil
}

func (h *Handler) setServerFlowControl(c *call) (any, error) {
	id, err := c.apiID()
	if err != nil {
		return nil, err
	}
	p, err := catalog.ServerProtocol(c.ctx, c.reader(), id)
	if err != nil {
		return nil, err
	}
	body, err := c.requireBody()
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if json.Unmarshal(body, &doc) == nil {
		c.params["server"] = doc["server"]
	}
	patch, err := apidef.DecodeServerPatch(p, body)
	if err != nil {
		return nil, err
	}
	b, err := catalog.UpdateServerFlow(c.ctx, c.reader(), id, patch)
	if err != nil {
		return nil, err
	}
	return success("server updated successfully"), c.commit(b)
}

func (h *Handler) openAPI(c *call) (any, error) { return OpenAPI(h.d.Version), nil }

func (h *Handler) metrics(c *call) (any, error) {
	if h.d.Metrics == nil {
		return nil, fail(http.StatusNotFound, wire.StatusFail, "metrics are not enabled")
	}
	return h.d.Metrics.Handler(), nil
}

func (h *Handler) activity(c *call) (any, error) {
	if h.d.Metrics == nil {
		return nil, fail(http.StatusNotFound, wire.StatusFail, "metrics are not enabled")
	}
	var since time.Time
	if v := c.query.Get("since"); v != "" {
		if sec, err := strconv.ParseInt(v, 10, 64); err == nil && sec >= 0 {
			since = time.Unix(sec, 0)
		} else if t, err := time.Parse(time.RFC3339, v); err == nil {
			since = t
		} else {
			return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter since contains invalid value %q: an RFC 3339 time (2026-12-01T08:00:00Z) or Unix seconds", v)
		}
	}
	id := c.query.Get("api_id")
	if _, given := c.query["api_id"]; given {
		if _, err := catalog.GetAPI(c.ctx, c.reader(), id); err != nil {
			return nil, err
		}
	}
	return h.d.Metrics.Activity(id, since), nil
}

var logLevels = map[int]string{1: "fatal", 2: "error", 3: "warning", 4: "info", 5: "debug"}

func (h *Handler) status(c *call) (any, error) {
	cfg := h.config()
	port := func(p int) string {
		if p == 0 {
			return "disabled"
		}
		return "port " + strconv.Itoa(p)
	}
	setting := func(s catalog.Setting, def bool) (string, error) {
		on, err := catalog.GetSetting(c.ctx, c.reader(), s, def)
		return enabledWord(on), err
	}
	firewall, err := setting(catalog.Firewall, cfg.EnableFirewall)
	if err != nil {
		return nil, err
	}
	sideband, err := setting(catalog.SidebandAuthentication, cfg.EnableSidebandAuthentication)
	if err != nil {
		return nil, err
	}
	detected, err := setting(catalog.ASEDetectedAttack, cfg.EnableASEDetectedAttack)
	if err != nil {
		return nil, err
	}
	abs, err := setting(catalog.ABS, cfg.EnableABS)
	if err != nil {
		return nil, err
	}
	absAttack, err := setting(catalog.ABSAttack, cfg.EnableABSAttack)
	if err != nil {
		return nil, err
	}
	used := h.d.ListMemoryUsed()
	configured := int64(cfg.AttackListMemory)
	free := max(configured-used, 0)
	password := "changed"
	if h.d.Accounts.DefaultPasswordInUse() {
		password = "default"
	}
	cluster := "disabled"
	var cl wire.Cluster
	active := 0
	if h.d.Cluster != nil {
		if cl, err = h.d.Cluster(c.ctx); err != nil {
			return nil, err
		}
		for _, n := range cl.Node {
			if n.Status == "active" {
				active++
			}
		}
		cluster = fmt.Sprintf("enabled (cluster %s, %d of %d nodes active)", cl.ClusterID, active, cl.NodeCount)
	}
	return wire.StatusInfo{
		Status:                 "started",
		Version:                h.d.Version,
		Mode:                   string(cfg.Mode),
		HTTPWS:                 port(cfg.HTTPWSPort),
		HTTPSWSS:               port(cfg.HTTPSWSSPort),
		Firewall:               firewall,
		Audit:                  enabledWord(cfg.EnableAudit),
		SidebandAuthentication: sideband,
		ASEDetectedAttack:      detected,
		ABS:                    abs,
		ABSAttack:              absAttack,
		AttackListMemory: "configured " + units.Size(configured).MB() + ", used " + units.Size(used).MB() +
			", free " + units.Size(free).MB(),
		AttackListMemoryBytes: wire.MemoryInfo{Configured: configured, Used: used, Free: free},
		LogLevel:              logLevels[cfg.AdminLogLevel],
		Timezone:              cfg.Timezone,
		AdminPassword:         password,
		Cluster:               cluster,
		ClusterID:             cl.ClusterID,
		ClusterNodes:          cl.NodeCount,
		ClusterNodesActive:    active,
		StartedAt:             h.d.Started.In(cfg.Location).Format(time.RFC3339),
	}, nil
}

func (h *Handler) updatePassword(c *call) (any, error) {
	c.params = map[string]any{"user": c.who.user}
	var req wire.PasswordChange
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	if req.CurrentPassword == "" || req.NewPassword == "" {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "current_password and new_password are required")
	}
	// The current password can be guessed here by whoever holds a
	// session: the check is counted in the address's brute-force budget
	// like a login.
	var b store.Batch
	var err error
	gerr := h.guarded(c, accounts.ErrWrongPassword.Error(), func() bool {
		b, err = h.d.Accounts.ChangePassword(c.ctx, c.reader(), c.who.user, req.CurrentPassword, req.NewPassword)
		return !errors.Is(err, accounts.ErrWrongPassword)
	})
	var ge *Error
	if gerr != nil && (err == nil || errors.As(gerr, &ge) && ge.Code == http.StatusTooManyRequests) {
		return nil, gerr // locked out, before or by this guess
	}
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return success("password updated"), nil
}

// strictJSON decodes a small request body into v, refusing unknown
// fields, wrong types and trailing data.
func strictJSON(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("unexpected data after the JSON document")
	}
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &typeErr):
		return fail(http.StatusForbidden, wire.StatusValidation, "%s: must be %s, got %s", typeErr.Field, jsonType(typeErr.Type.Kind().String()), typeErr.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return fail(http.StatusForbidden, wire.StatusValidation, "%s: unknown field", strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`))
	}
	return fail(http.StatusForbidden, wire.StatusFail, "json parsing error").withDetail(err.Error())
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "struct", "map":
		return "an object"
	}
	return "a number"
}
