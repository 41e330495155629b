// Package client is the typed client of ASE's management API, used by the
// CLI and the end-to-end tests. It speaks /v5/ase with the vendor's
// access/secret key headers.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/ase-project/ase/internal/wire"
)

// DefaultURL is where the management API listens by default.
const DefaultURL = "http://127.0.0.1:8010"

// Client calls one ASE management API.
type Client struct {
	BaseURL   string // e.g. http://127.0.0.1:8010
	User      string // x-ase-access-key
	Password  string // x-ase-secret-key
	UserAgent string // "ase-cli/<version>" marks calls from the CLI in the audit log
	HTTP      *http.Client
	// Session makes the client log in (GET /api/authentication, HTTP
	// Basic) at its first call and send the session instead of the
	// access/secret key headers, which only the built-in admin has: set it
	// for every other user, and call Logout when done.
	Session bool

	sessionID string
}

// New returns a client of the management API at baseURL.
func New(baseURL, user, password string) *Client {
	return &Client{BaseURL: baseURL, User: user, Password: password, UserAgent: "ase-client", HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// Error is a failure reported by the server, with its HTTP status code and
// the vendor's status string and message (or, from the /api routes, the
// error type and message).
type Error struct {
	Code    int
	Status  string
	Message string
	Detail  string
	Type    string // the /api routes' error type, e.g. NotFound
	// Body is the reply exactly as the server sent it, for `-o json`.
	Body []byte
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Message + ": " + e.Detail
	}
	return e.Message
}

// Raw is a reply exactly as the server sent it, for `-o json`.
type Raw = json.RawMessage

// Text is a request body sent as text/plain (a threat feed).
type Text []byte

// Do sends a request to path (under /v5/ase) and decodes the JSON reply
// into out (if not nil). A body of type []byte is sent as is; anything
// else is encoded as JSON. A non-2xx reply is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	return c.do(ctx, method, "/v5/ase"+path, query, body, out)
}

// do is Do with the full path: the accounts routes live under /api.
func (c *Client) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	if c.Session && c.sessionID == "" {
		if err := c.Login(ctx); err != nil {
			return err
		}
	}
	u := c.BaseURL + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	ctype := "application/json"
	if t, ok := body.(Text); ok {
		body, ctype = []byte(t), "text/plain; charset=utf-8"
	}
	if body != nil {
		b, ok := body.([]byte)
		if !ok {
			var err error
			if b, err = json.Marshal(body); err != nil {
				return err
			}
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	if c.sessionID != "" {
		req.Header.Set("session_id", c.sessionID)
	} else {
		req.Header.Set("x-ase-access-key", c.User)
		req.Header.Set("x-ase-secret-key", c.Password)
	}
	if rd != nil {
		req.Header.Set("Content-Type", ctype)
	}
	_, data, err := c.send(req)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*Raw); ok {
		*raw = append((*raw)[:0], data...)
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the server's reply is not what this client expects: %w", err)
	}
	return nil
}

// send sends req with the client's common headers and reads the reply; a
// non-2xx reply is returned as *Error.
func (c *Client) send(req *http.Request) (*http.Response, []byte, error) {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, nil, fmt.Errorf("cannot reach the ASE management API at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, nil, replyError(resp.StatusCode, data)
	}
	return resp, data, nil
}

// replyError reads a refusal in either of the management API's shapes:
// {"status", "status_message", "detail"} or, from /api, {"error": {"type",
// "message"}}.
func replyError(code int, data []byte) *Error {
	var s struct {
		wire.Status
		Detail string `json:"detail"`
		Error  *struct {
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &Error{Code: code, Status: wire.StatusFail, Body: data}
	if !json.Valid(data) {
		e.Body = nil
	}
	switch {
	case json.Unmarshal(data, &s) != nil:
		e.Message = fmt.Sprintf("HTTP %d: %s", code, bytes.TrimSpace(data))
	case s.Error != nil && s.Error.Message != "":
		e.Type, e.Message = s.Error.Type, s.Error.Message
	case s.Message != "":
		e.Status, e.Message, e.Detail = s.Status.Status, s.Message, s.Detail
	default:
		e.Message = fmt.Sprintf("HTTP %d: %s", code, bytes.TrimSpace(data))
	}
	return e
}

// Login opens a session as User (GET /api/authentication with HTTP
// Basic); the client's later calls send it instead of the access/secret
// key headers.
func (c *Client) Login(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, "GET", c.BaseURL+"/api/authentication?login_method=local&type=password", nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth(c.User, c.Password)
	resp, _, err := c.send(req)
	if err != nil {
		return err
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "session_id" && ck.Value != "" {
			c.sessionID = ck.Value
			return nil
		}
	}
	return errors.New("the server's login reply has no session_id cookie")
}

// Logout ends the session Login opened, if any: a CLI command leaves no
// session behind.
func (c *Client) Logout(ctx context.Context) error {
	if c.sessionID == "" {
		return nil
	}
	err := c.do(ctx, "DELETE", "/api/authentication", nil, nil, nil)
	c.sessionID = ""
	return err
}

func apiQuery(id string) url.Values { return url.Values{"api_id": {id}} }

// ListAPIs returns every API's id and status.
func (c *Client) ListAPIs(ctx context.Context) (wire.APIList, error) {
	var out wire.APIList
	return out, c.Do(ctx, "GET", "/api", nil, nil, &out)
}

// GetAPI returns an API's definition document.
func (c *Client) GetAPI(ctx context.Context, id string) (Raw, error) {
	var out Raw
	return out, c.Do(ctx, "GET", "/api", apiQuery(id), nil, &out)
}

// CreateAPI creates API id from its definition document.
func (c *Client) CreateAPI(ctx context.Context, id string, def []byte) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/api", apiQuery(id), def, &out)
}

// UpdateAPI replaces API id's definition.
func (c *Client) UpdateAPI(ctx context.Context, id string, def []byte) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "PUT", "/api", apiQuery(id), def, &out)
}

// DeleteAPI deletes API id.
func (c *Client) DeleteAPI(ctx context.Context, id string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "DELETE", "/api", apiQuery(id), nil, &out)
}

type serverBody struct {
	Server any `json:"server"`
}

// ListServers returns API id's backend servers with their health.
func (c *Client) ListServers(ctx context.Context, id string) (wire.ServerList, error) {
	var out wire.ServerList
	return out, c.Do(ctx, "GET", "/server", apiQuery(id), nil, &out)
}

// AddServer adds a backend server to API id.
func (c *Client) AddServer(ctx context.Context, id string, s wire.Server) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/server", apiQuery(id), serverBody{s}, &out)
}

// DeleteServer removes a backend server from API id.
func (c *Client) DeleteServer(ctx context.Context, id, host string, port int) (wire.Status, error) {
	var out wire.Status
	body := serverBody{map[string]any{"host": host, "port": port}}
	return out, c.Do(ctx, "DELETE", "/server", apiQuery(id), body, &out)
}

// Firewall returns the firewall status.
func (c *Client) Firewall(ctx context.Context) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "GET", "/firewall", nil, nil, &out)
}

// SetFirewall enables or disables the firewall.
func (c *Client) SetFirewall(ctx context.Context, on bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall", statusQuery(on), nil, &out)
}

func statusQuery(on bool) url.Values {
	if on {
		return url.Values{"status": {"enable"}}
	}
	return url.Values{"status": {"disable"}}
}

// FlowControl returns API id's flow control.
func (c *Client) FlowControl(ctx context.Context, id string) (wire.FlowControlInfo, error) {
	var out wire.FlowControlInfo
	return out, c.Do(ctx, "GET", "/firewall/flowcontrol", apiQuery(id), nil, &out)
}

// SetFlowControl changes the given flow_control fields of API id.
func (c *Client) SetFlowControl(ctx context.Context, id string, fields map[string]any) (wire.FlowControlInfo, error) {
	var out wire.FlowControlInfo
	return out, c.Do(ctx, "POST", "/firewall/flowcontrol", apiQuery(id), map[string]any{"flow_control": fields}, &out)
}

// SetServerFlowControl sets one server's spike threshold (when not nil)
// and connection quota (when not zero, or when the threshold is nil).
func (c *Client) SetServerFlowControl(ctx context.Context, id string, s wire.Server) (wire.Status, error) {
	body := map[string]any{"host": s.Host, "port": s.Port}
	if s.ServerSpikeThreshold != nil {
		body["server_spike_threshold"] = *s.ServerSpikeThreshold
	}
	if s.ServerConnectionQuota != 0 || s.ServerSpikeThreshold == nil {
		body["server_connection_quota"] = s.ServerConnectionQuota
	}
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/flowcontrol/server", apiQuery(id), serverBody{body}, &out)
}

// Cluster returns the cluster's nodes.
func (c *Client) Cluster(ctx context.Context) (wire.Cluster, error) {
	var out wire.Cluster
	return out, c.Do(ctx, "GET", "/cluster", nil, nil, &out)
}

// PersistentConnections returns API id's live WebSocket connection counts.
func (c *Client) PersistentConnections(ctx context.Context, id string) (wire.PersistentConnections, error) {
	var out wire.PersistentConnections
	return out, c.Do(ctx, "GET", "/persistentconnection", apiQuery(id), nil, &out)
}

// Status returns what `ase status` prints.
func (c *Client) Status(ctx context.Context) (wire.StatusInfo, error) {
	var out wire.StatusInfo
	return out, c.Do(ctx, "GET", "/status", nil, nil, &out)
}

// UpdatePassword changes the password of the client's user.
func (c *Client) UpdatePassword(ctx context.Context, current, next string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "PUT", "/password", nil, wire.PasswordChange{CurrentPassword: current, NewPassword: next}, &out)
}

// AddListEntries adds one entry (a wire.ListEntry) or many (a slice: a
// bulk import) to list, "blacklist" or "whitelist".
func (c *Client) AddListEntries(ctx context.Context, list string, entries any) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/"+list, nil, entries, &out)
}

// DeleteListEntry deletes one entry from list.
func (c *Client) DeleteListEntry(ctx context.Context, list string, e wire.ListEntry) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "DELETE", "/firewall/"+list, nil, e, &out)
}

// ClearList deletes every entry of list with tag ("all" for every entry).
func (c *Client) ClearList(ctx context.Context, list, tag string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "DELETE", "/firewall/"+list, url.Values{"tag": {tag}}, nil, &out)
}

// ListQuery selects what a list view shows.
type ListQuery struct {
	Tag   string // "all" (or "") for every section
	Type  string // an entry type, or "" for all
	Value string // entries whose value contains it, or "" for all
	// Limit and Cursor ask for one page: at most Limit entries after
	// Cursor (a page's NextCursor; "" for the first page). With neither,
	// the view holds every entry; with a Cursor alone, the page holds the
	// server's default. Limit is sent when not 0, or when SendLimit (a
	// limit the user gave, for the server to judge).
	Limit     int
	Cursor    string
	SendLimit bool
}

// ViewList returns list's entries by section ("manual_blacklist", ...,
// or "whitelist"), as q selects them.
func (c *Client) ViewList(ctx context.Context, list string, q ListQuery) (wire.ListView, error) {
	v := url.Values{}
	if q.Tag != "" {
		v.Set("tag", q.Tag)
	}
	if q.Type != "" {
		v.Set("type", q.Type)
	}
	if q.Value != "" {
		v.Set("value", q.Value)
	}
	if q.SendLimit || q.Limit != 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if q.Cursor != "" {
		v.Set("cursor", q.Cursor)
	}
	var out wire.ListView
	return out, c.Do(ctx, "GET", "/firewall/"+list, v, nil, &out)
}

// ImportList imports a bulk of entries into list: a JSON array, or a
// plain-text feed (text), with a TTL and a reason (each "" for none) for
// the entries that have none of their own.
func (c *Client) ImportList(ctx context.Context, list string, body []byte, text bool, ttl, reason string) (wire.Status, error) {
	v := url.Values{}
	if ttl != "" {
		v.Set("ttl", ttl)
	}
	if reason != "" {
		v.Set("reason", reason)
	}
	var b any = body
	if text {
		b = Text(body)
	}
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/"+list, v, b, &out)
}

// Check asks what the lists decide about one client identity: typ is ip,
// token, cookie, api_key or username; name is the cookie's or API key's
// name ("" for the others).
func (c *Client) Check(ctx context.Context, typ, name, value string) (wire.Check, error) {
	v := url.Values{"type": {typ}, "value": {value}}
	if name != "" {
		v.Set("name", name)
	}
	var out wire.Check
	return out, c.Do(ctx, "GET", "/firewall/check", v, nil, &out)
}

// ASEDetectedAttack returns whether ASE-detected attacks are enabled.
func (c *Client) ASEDetectedAttack(ctx context.Context) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "GET", "/firewall/ase_detected_attack", nil, nil, &out)
}

// SetASEDetectedAttack enables or disables ASE-detected attacks.
func (c *Client) SetASEDetectedAttack(ctx context.Context, on bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/ase_detected_attack", statusQuery(on), nil, &out)
}

// SidebandAuthentication returns whether sideband authentication is on.
func (c *Client) SidebandAuthentication(ctx context.Context) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "GET", "/sideband/authentication", nil, nil, &out)
}

// SetSidebandAuthentication turns sideband authentication on or off.
func (c *Client) SetSidebandAuthentication(ctx context.Context, on bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/sideband/authentication", statusQuery(on), nil, &out)
}

// CreateSidebandToken creates a token.
func (c *Client) CreateSidebandToken(ctx context.Context) (wire.TokenCreated, error) {
	var out wire.TokenCreated
	return out, c.Do(ctx, "POST", "/sideband/token", nil, nil, &out)
}

// ImportSidebandToken imports a token.
func (c *Client) ImportSidebandToken(ctx context.Context, token string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "PUT", "/sideband/token", nil, map[string]string{"token": token}, &out)
}

// DeleteSidebandToken deletes a token.
func (c *Client) DeleteSidebandToken(ctx context.Context, token string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "DELETE", "/sideband/token", nil, map[string]string{"token": token}, &out)
}

// ListSidebandTokens lists the tokens.
func (c *Client) ListSidebandTokens(ctx context.Context) (wire.SidebandTokens, error) {
	var out wire.SidebandTokens
	return out, c.Do(ctx, "GET", "/sideband/token", nil, nil, &out)
}

// CreateSharedSecret creates an inactive shared secret.
func (c *Client) CreateSharedSecret(ctx context.Context, name, secret string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/sideband/secret", nil, map[string]string{"name": name, "secret": secret}, &out)
}

// SetSharedSecretActive activates or deactivates a shared secret.
func (c *Client) SetSharedSecretActive(ctx context.Context, name string, active bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "PUT", "/sideband/secret", nil, map[string]any{"name": name, "active": active}, &out)
}

// DeleteSharedSecret deletes an inactive shared secret.
func (c *Client) DeleteSharedSecret(ctx context.Context, name string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "DELETE", "/sideband/secret", nil, map[string]string{"name": name}, &out)
}

// ListSharedSecrets lists the shared secrets (never their values).
func (c *Client) ListSharedSecrets(ctx context.Context) (wire.SharedSecrets, error) {
	var out wire.SharedSecrets
	return out, c.Do(ctx, "GET", "/sideband/secret", nil, nil, &out)
}

// SharedSecretHeader returns the header that carries shared secrets.
func (c *Client) SharedSecretHeader(ctx context.Context) (wire.SecretHeader, error) {
	var out wire.SecretHeader
	return out, c.Do(ctx, "GET", "/sideband/secret/header", nil, nil, &out)
}

// SetSharedSecretHeader sets it; "" resets it to the default.
func (c *Client) SetSharedSecretHeader(ctx context.Context, header string) (wire.Status, error) {
	var out wire.Status
	if header == "" {
		return out, c.Do(ctx, "DELETE", "/sideband/secret/header", nil, nil, &out)
	}
	return out, c.Do(ctx, "PUT", "/sideband/secret/header", nil, wire.SecretHeader{Header: header}, &out)
}

// The accounts routes (seed 004's model).
const (
	usersPath   = "/api/configuration/aaa/local_database/users"
	apiKeysPath = "/api/configuration/aaa/local_database/api_keys"
)

// ListUsers lists the local users (admin role).
func (c *Client) ListUsers(ctx context.Context) (wire.Users, error) {
	var out wire.Users
	return out, c.do(ctx, "GET", usersPath, nil, nil, &out)
}

// GetUser reads one user (admin role).
func (c *Client) GetUser(ctx context.Context, name string) (wire.User, error) {
	var out wire.User
	return out, c.do(ctx, "GET", usersPath+"/"+url.PathEscape(name), nil, nil, &out)
}

// CreateUser creates a local user with a password and a role.
func (c *Client) CreateUser(ctx context.Context, name, password, role string) (wire.Ref, error) {
	var out wire.Ref
	return out, c.do(ctx, "POST", usersPath, nil, wire.UserChange{Name: name, Password: password, Role: role}, &out)
}

// UpdateUser changes a user's password and/or role (an empty one stays).
func (c *Client) UpdateUser(ctx context.Context, name, password, role string) (wire.Ref, error) {
	var out wire.Ref
	return out, c.do(ctx, "PUT", usersPath+"/"+url.PathEscape(name), nil, wire.UserChange{Password: password, Role: role}, &out)
}

// DeleteUser deletes a user (never the built-in admin).
func (c *Client) DeleteUser(ctx context.Context, name string) (wire.Ref, error) {
	var out wire.Ref
	return out, c.do(ctx, "DELETE", usersPath+"/"+url.PathEscape(name), nil, nil, &out)
}

// ListAPIKeys lists API keys: everyone's for admins, else the user's own.
func (c *Client) ListAPIKeys(ctx context.Context) (wire.APIKeys, error) {
	var out wire.APIKeys
	return out, c.do(ctx, "GET", apiKeysPath, nil, nil, &out)
}

// CreateAPIKey creates an API key for the client's user, who must be
// logged in (Session): the reply holds the token, shown only there.
func (c *Client) CreateAPIKey(ctx context.Context, name string) (wire.APIKey, error) {
	var out wire.APIKey
	return out, c.do(ctx, "POST", apiKeysPath, nil, wire.APIKeyName{Name: name}, &out)
}

// CreateAPIKeyFor creates an API key for another user (admin role).
func (c *Client) CreateAPIKeyFor(ctx context.Context, user, name string) (wire.APIKey, error) {
	var out wire.APIKey
	return out, c.do(ctx, "POST", usersPath+"/"+url.PathEscape(user)+"/api_keys", nil, wire.APIKeyName{Name: name}, &out)
}

// DeleteAPIKey deletes an API key by its id (admins: any; users: their own).
func (c *Client) DeleteAPIKey(ctx context.Context, key string) (wire.Ref, error) {
	var out wire.Ref
	return out, c.do(ctx, "DELETE", apiKeysPath+"/"+url.PathEscape(key), nil, nil, &out)
}

// ABS returns whether behavioural detection is enabled (enable_abs).
func (c *Client) ABS(ctx context.Context) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "GET", "/firewall/abs", nil, nil, &out)
}

// SetABS enables or disables behavioural detection.
func (c *Client) SetABS(ctx context.Context, on bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/abs", statusQuery(on), nil, &out)
}

// ABSAttack returns whether what behavioural detection finds is
// deny-listed (enable_abs_attack).
func (c *Client) ABSAttack(ctx context.Context) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "GET", "/firewall/abs_attack", nil, nil, &out)
}

// SetABSAttack enables or disables deny-listing what behavioural
// detection finds.
func (c *Client) SetABSAttack(ctx context.Context, on bool) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/firewall/abs_attack", statusQuery(on), nil, &out)
}

// ABSAttackListQuery selects an attack list's items: by status (active,
// expired or reported; "" for all) and detection time (earlier_date and
// later_date: RFC 3339 or yyyy-mm-ddThh:mm UTC; "" for unbounded).
type ABSAttackListQuery struct {
	Status, EarlierDate, LaterDate string
}

// ABSAttackList returns the vendor ABS's attack list (/v5/abs/attacklist).
func (c *Client) ABSAttackList(ctx context.Context, q ABSAttackListQuery) (wire.ABSAttackList, error) {
	v := url.Values{}
	for k, s := range map[string]string{"status": q.Status, "earlier_date": q.EarlierDate, "later_date": q.LaterDate} {
		if s != "" {
			v.Set(k, s)
		}
	}
	var out wire.ABSAttackList
	return out, c.do(ctx, "GET", "/v5/abs/attacklist", v, nil, &out)
}

// DeleteABSAttackList removes behavioural detection's deny-list entries
// as d selects.
func (c *Client) DeleteABSAttackList(ctx context.Context, d wire.ABSDelete) (wire.ABSDeleted, error) {
	var out wire.ABSDeleted
	return out, c.do(ctx, "DELETE", "/v5/abs/attacklist", nil, d, &out)
}

// ABSInfo returns behavioural detection's settings and every API's state.
func (c *Client) ABSInfo(ctx context.Context) (wire.ABSInfo, error) {
	var out wire.ABSInfo
	return out, c.Do(ctx, "GET", "/abs", nil, nil, &out)
}

// ABSAPI returns API id's behavioural detection state.
func (c *Client) ABSAPI(ctx context.Context, id string) (wire.ABSAPIStatus, error) {
	var out wire.ABSAPIStatus
	return out, c.Do(ctx, "GET", "/abs/"+url.PathEscape(id), nil, nil, &out)
}

// SetABSPolicy sets API id's detection policy (what it does not name is
// the default).
func (c *Client) SetABSPolicy(ctx context.Context, id string, p wire.ABSPolicy) (wire.ABSPolicyReply, error) {
	var out wire.ABSPolicyReply
	return out, c.Do(ctx, "PUT", "/abs/"+url.PathEscape(id)+"/policy", nil, p, &out)
}

// ResetABSPolicy resets API id's detection policy to the defaults.
func (c *Client) ResetABSPolicy(ctx context.Context, id string) (wire.ABSPolicyReply, error) {
	var out wire.ABSPolicyReply
	return out, c.Do(ctx, "DELETE", "/abs/"+url.PathEscape(id)+"/policy", nil, nil, &out)
}

// RetrainABS makes API id learn its traffic again, on every node.
func (c *Client) RetrainABS(ctx context.Context, id string) (wire.Status, error) {
	var out wire.Status
	return out, c.Do(ctx, "POST", "/abs/"+url.PathEscape(id)+"/retrain", nil, nil, &out)
}
