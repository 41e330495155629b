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
}

// New returns a client of the management API at baseURL.
func New(baseURL, user, password string) *Client {
	return &Client{BaseURL: baseURL, User: user, Password: password, UserAgent: "ase-client", HTTP: &http.Client{Timeout: 5 * time.Minute}}
}

// Error is a failure reported by the server, with its HTTP status code and
// the vendor's status string and message.
type Error struct {
	Code    int
	Status  string
	Message string
	Detail  string
}

func (e *Error) Error() string {
	if e.Detail != "" {
		return e.Message + ": " + e.Detail
	}
	return e.Message
}

// Raw is a reply exactly as the server sent it, for `-o json`.
type Raw = json.RawMessage

// Do sends a request to path (under /v5/ase) and decodes the JSON reply
// into out (if not nil). A body of type []byte is sent as is; anything
// else is encoded as JSON. A non-2xx reply is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.BaseURL + "/v5/ase" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
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
	req.Header.Set("x-ase-access-key", c.User)
	req.Header.Set("x-ase-secret-key", c.Password)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.UserAgent)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("cannot reach the ASE management API at %s: %w", c.BaseURL, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("reading the reply: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var s struct {
			wire.Status
			Detail string `json:"detail"`
		}
		if json.Unmarshal(data, &s) != nil || s.Message == "" {
			return &Error{Code: resp.StatusCode, Status: wire.StatusFail, Message: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(data))}
		}
		return &Error{Code: resp.StatusCode, Status: s.Status.Status, Message: s.Message, Detail: s.Detail}
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

// ViewList returns list's entries by section ("manual_blacklist", ...,
// or "whitelist"), with tag ("all" for every section).
func (c *Client) ViewList(ctx context.Context, list, tag string) (map[string][]wire.ListEntry, error) {
	var out map[string][]wire.ListEntry
	return out, c.Do(ctx, "GET", "/firewall/"+list, url.Values{"tag": {tag}}, nil, &out)
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
