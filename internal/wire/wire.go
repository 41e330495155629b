// Package wire holds the JSON shapes of the management API, shared by the
// server, the typed client and the CLI so that each field is spelled once.
package wire

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// Status is the vendor's reply to a change and its error shape:
// {"status": "...", "status_message": "..."}.
type Status struct {
	Status  string `json:"status"`
	Message string `json:"status_message"`
}

// Status strings from the seeds.
const (
	StatusSuccess          = "success"
	StatusFail             = "fail"
	StatusAPIExists        = "api_already_exists"
	StatusAPINotFound      = "api_not_found"
	StatusValidation       = "validation_error"
	StatusServerExists     = "server_exists"
	StatusServerNotFound   = "server_not_found"
	StatusNoClusterMode    = "no_cluster_mode"
	StatusInvalidValue     = "invalid_value"
	StatusEnabled          = "enabled"
	StatusDisabled         = "disabled"
	StatusTokenCreated     = "token_created"
	StatusSecretInUse      = "secret_in_use"
	StatusTransactionOpen  = "transaction_in_progress"
	StatusPermissionDenied = "permission_denied"
)

// APIList is the reply of GET /api. APICount is a string, as in the seed.
type APIList struct {
	APICount string         `json:"api_count"`
	API      []APIListEntry `json:"api"`
}

// APIListEntry is one API in an APIList.
type APIListEntry struct {
	APIID  string `json:"api_id"`
	Status string `json:"status"`
}

// FlowControl is an API's flow_control. The byte thresholds appear for
// WebSocket APIs only.
type FlowControl struct {
	ClientSpikeThreshold     string  `json:"client_spike_threshold"`
	BytesInThreshold         *string `json:"bytes_in_threshold,omitempty"`
	BytesOutThreshold        *string `json:"bytes_out_threshold,omitempty"`
	ServerConnectionQueueing bool    `json:"server_connection_queueing"`
}

// FlowControlInfo is the reply of GET and POST /firewall/flowcontrol.
type FlowControlInfo struct {
	APIID       string      `json:"api_id"`
	FlowControl FlowControl `json:"flow_control"`
}

// Server is a backend server. ServerSpikeThreshold appears for REST APIs
// only; HealthStatus ("Up" or "Down") only in server listings.
type Server struct {
	Host                  string  `json:"host"`
	Port                  int     `json:"port"`
	ServerSpikeThreshold  *string `json:"server_spike_threshold,omitempty"`
	ServerConnectionQuota int     `json:"server_connection_quota"`
	HealthStatus          string  `json:"health_status,omitempty"`
}

// ServerList is the reply of GET /server.
type ServerList struct {
	APIID       string   `json:"api_id"`
	ServerCount int      `json:"server_count"`
	Server      []Server `json:"server"`
}

// Health statuses of a server.
const (
	HealthUp   = "Up"
	HealthDown = "Down"
)

// PersistentConnections is the reply of GET /persistentconnection.
type PersistentConnections struct {
	APIID string          `json:"api_id"`
	Count ConnectionCount `json:"persistent_connection_count"`
}

// ConnectionCount counts live WebSocket connections by scheme.
type ConnectionCount struct {
	WS  int64 `json:"ws"`
	WSS int64 `json:"wss"`
}

// Cluster is the reply of GET /cluster in cluster mode.
type Cluster struct {
	ClusterID string        `json:"cluster_id"`
	NodeCount int           `json:"node_count"`
	Node      []ClusterNode `json:"node"`
}

// ClusterNode is one node of a Cluster.
type ClusterNode struct {
	Host   string `json:"host"`
	Port   int    `json:"port"`
	UUID   string `json:"uuid"`
	Status string `json:"status"` // "active" or "inactive"
}

// PasswordChange is the body of PUT /password (the CLI's update_password).
type PasswordChange struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

// StatusInfo is the reply of GET /status: what `ase status` prints.
type StatusInfo struct {
	Status                 string     `json:"status"`
	Version                string     `json:"version"`
	Mode                   string     `json:"mode"`
	HTTPWS                 string     `json:"http_ws"`
	HTTPSWSS               string     `json:"https_wss"`
	Firewall               string     `json:"firewall"`
	Audit                  string     `json:"audit"`
	SidebandAuthentication string     `json:"sideband_authentication"`
	ASEDetectedAttack      string     `json:"ase_detected_attack"`
	ABS                    string     `json:"abs"`        // behavioural detection: enabled or disabled
	ABSAttack              string     `json:"abs_attack"` // what it finds is deny-listed: enabled or disabled
	AttackListMemory       string     `json:"attack_list_memory"`
	AttackListMemoryBytes  MemoryInfo `json:"attack_list_memory_bytes"`
	LogLevel               string     `json:"log_level"`
	Timezone               string     `json:"timezone"`
	AdminPassword          string     `json:"admin_password"` // "default" or "changed"
	Cluster                string     `json:"cluster"`        // "disabled", or "enabled (N of M nodes active)"
	// In cluster mode: the cluster's ID and its nodes.
	ClusterID          string `json:"cluster_id,omitempty"`
	ClusterNodes       int    `json:"cluster_nodes,omitempty"`
	ClusterNodesActive int    `json:"cluster_nodes_active,omitempty"`
	StartedAt          string `json:"started_at"`
}

// MemoryInfo is a memory budget in bytes.
type MemoryInfo struct {
	Configured int64 `json:"configured"`
	Used       int64 `json:"used"`
	Free       int64 `json:"free"`
}

// ListEntry is a deny- or allow-list entry: in add and delete bodies, with
// an optional TTL (seconds, or a duration such as "4h", "90m", "7d") and
// reason; in views and checks, with its tag (its origin), reason,
// created_at (absent for entries stored before ASE kept it) and
// expires_at (when it has one).
type ListEntry struct {
	Type      string `json:"type"`
	Name      string `json:"name,omitempty"`
	Value     string `json:"value"`
	TTL       string `json:"ttl,omitempty"`
	Tag       string `json:"tag,omitempty"`
	Reason    string `json:"reason,omitempty"`
	CreatedAt string `json:"created_at,omitempty"`
	ExpiresAt string `json:"expires_at,omitempty"`
}

// NextCursor is the key of a paged list view that holds the cursor of the
// next page; it is absent from the last page and from unpaged views.
const NextCursor = "next_cursor"

// ListView is the reply of GET /firewall/blacklist and /firewall/whitelist:
// the vendor's sections ("manual_blacklist", ..., or "whitelist"), each a
// list of entries, in the server's order, and the next page's cursor.
type ListView struct {
	Order      []string // the sections' names as the server sent them
	Sections   map[string][]ListEntry
	NextCursor string
}

// UnmarshalJSON reads a view, keeping its sections' order.
func (v *ListView) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return fmt.Errorf("a list view is a JSON object")
	}
	*v = ListView{Sections: map[string][]ListEntry{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := t.(string)
		if key == NextCursor {
			if err := dec.Decode(&v.NextCursor); err != nil {
				return err
			}
			continue
		}
		var es []ListEntry
		if err := dec.Decode(&es); err != nil {
			return fmt.Errorf("section %q: %w", key, err)
		}
		v.Order, v.Sections[key] = append(v.Order, key), es
	}
	_, err := dec.Token()
	return err
}

// MarshalJSON writes a view as the server does.
func (v ListView) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, k := range v.Order {
		if i > 0 {
			b.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		es := v.Sections[k]
		if es == nil {
			es = []ListEntry{}
		}
		list, err := json.Marshal(es)
		if err != nil {
			return nil, err
		}
		b.Write(key)
		b.WriteByte(':')
		b.Write(list)
	}
	if v.NextCursor != "" {
		if len(v.Order) > 0 {
			b.WriteByte(',')
		}
		cur, _ := json.Marshal(v.NextCursor)
		b.WriteString(`"` + NextCursor + `":`)
		b.Write(cur)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Verdicts of a check.
const (
	VerdictAllowed   = "allowed"    // an allow-list entry matches: it wins
	VerdictDenied    = "denied"     // a deny-list entry matches, no allow-list entry
	VerdictNotListed = "not_listed" // neither list matches
)

// Check is the reply of GET /firewall/check: what the lists decide about
// one client identity, and every entry of each list that matches it (an
// address's own entry, then the ranges covering it, most specific first).
type Check struct {
	Type    string     `json:"type"`
	Name    string     `json:"name,omitempty"`
	Value   string     `json:"value"`
	Verdict string     `json:"verdict"`
	List    string     `json:"list,omitempty"`  // the list that decides: whitelist or blacklist
	Entry   *ListEntry `json:"entry,omitempty"` // the entry that decides
	// Firewall is "enabled" or "disabled": disabled, nothing is blocked
	// whatever the lists hold.
	Firewall  string      `json:"firewall"`
	Whitelist []ListEntry `json:"whitelist"`
	Blacklist []ListEntry `json:"blacklist"`
}

// TokenTimeLayout is how sideband tokens' created_at reads (seed 000:
// "2021-May-06 14:02:44").
const TokenTimeLayout = "2006-Jan-02 15:04:05"

// SidebandTokens is the reply of GET /sideband/token.
type SidebandTokens struct {
	Tokens []SidebandToken `json:"sideband_tokens"`
}

// SidebandToken is one listed token.
type SidebandToken struct {
	Token     string `json:"token"`
	CreatedAt string `json:"created_at"`
}

// TokenCreated is the reply of POST /sideband/token.
type TokenCreated struct {
	Status string `json:"status"`
	Token  string `json:"token"`
}

// SharedSecrets is the reply of GET /sideband/secret: never the values.
type SharedSecrets struct {
	Secrets []SharedSecret `json:"shared_secrets"`
}

// SharedSecret is one listed shared secret.
type SharedSecret struct {
	Name      string `json:"name"`
	Active    bool   `json:"active"`
	CreatedAt string `json:"created_at"`
}

// SecretHeader is the body and reply of /sideband/secret/header.
type SecretHeader struct {
	Header string `json:"header"`
}

// Meta links an /api item to its address.
type Meta struct {
	Href string `json:"href"`
}

// User is a local operator account as the /api users routes show it.
type User struct {
	Key  string   `json:"key"` // the user name
	Body UserBody `json:"body"`
	Meta Meta     `json:"meta"`
}

// UserBody is a User's fields.
type UserBody struct {
	Name      string `json:"name"`
	Role      string `json:"role"` // admin, write or read
	CreatedAt string `json:"created_at"`
}

// Users is the reply of GET /api/configuration/aaa/local_database/users.
type Users struct {
	Items []User `json:"items"`
}

// UserChange is the body that creates a user (POST, every field) or
// changes one (PUT, the password and/or the role).
type UserChange struct {
	Name     string `json:"name,omitempty"`
	Password string `json:"password,omitempty"`
	Role     string `json:"role,omitempty"`
}

// Ref is the reply of a change to an /api item: its key and address.
type Ref struct {
	Key  string `json:"key"`
	Meta Meta   `json:"meta"`
}

// APIKey is an API key as the /api api_keys routes show it: the token
// only in the reply that created it.
type APIKey struct {
	Key  string     `json:"key"` // the key's id
	Body APIKeyBody `json:"body"`
	Meta Meta       `json:"meta"`
}

// APIKeyBody is an APIKey's fields.
type APIKeyBody struct {
	Name        string `json:"name"`
	Username    string `json:"username"`
	LoginMethod string `json:"login_method"`
	CreatedAt   string `json:"created_at"`
	Token       string `json:"token,omitempty"`
}

// APIKeys is the reply of GET /api/configuration/aaa/local_database/api_keys.
type APIKeys struct {
	Items []APIKey `json:"items"`
}

// APIKeyName is the body that creates an API key.
type APIKeyName struct {
	Name string `json:"name"`
}

// Reload is the reply of POST /reload: what re-reading ase.conf and
// api_dir changed.
type Reload struct {
	Status  string `json:"status"`
	Message string `json:"status_message"`
	// Applied are the changed keys now in effect; NeedsRestart the
	// changed keys that take effect at the next start only.
	Applied      []ReloadChange `json:"applied"`
	NeedsRestart []ReloadChange `json:"needs_restart"`
	// Ignored are the vendor keys ase.conf sets that ASE accepts without
	// acting on them: "ignored: <key>, because <why>".
	Ignored []string `json:"ignored"`
	// Problems, when there are any, are why nothing was reloaded (the
	// reply is then a validation_error naming them).
	Problems []string `json:"problems,omitempty"`
}

// AuditParams are a reload's audit parameters: the changed keys (never
// values) and how many problems refused it.
func (r *Reload) AuditParams() map[string]any {
	keys := func(cs []ReloadChange) []string {
		out := []string{}
		for _, c := range cs {
			out = append(out, c.Key)
		}
		return out
	}
	p := map[string]any{"applied": keys(r.Applied), "needs_restart": keys(r.NeedsRestart)}
	if len(r.Problems) > 0 {
		p["problems"] = len(r.Problems)
	}
	return p
}

// ReloadChange is one key whose value changed in ase.conf. The values of
// a secret key are never shown (Secret is true, From and To empty).
type ReloadChange struct {
	Key    string `json:"key"`
	From   string `json:"from"`
	To     string `json:"to"`
	Secret bool   `json:"secret,omitempty"`
	// Hint says how to change the setting without a restart, when the
	// management API can.
	Hint string `json:"hint,omitempty"`
}

// ABSAttackList is the reply of GET /v4/abs/attacklist, the vendor ABS's
// attack list: what behavioural detection found, by identity type.
// EarlierDate and LaterDate echo the query (null when not given); Status is
// the status asked for, or "all".
type ABSAttackList struct {
	Name        string      `json:"name"`
	Description string      `json:"description"`
	EarlierDate *string     `json:"earlier_date"`
	LaterDate   *string     `json:"later_date"`
	Status      string      `json:"status"`
	IPs         []ABSAttack `json:"ips"`
	Cookies     []ABSAttack `json:"cookies"`
	OAuthTokens []ABSAttack `json:"oauth_tokens"`
	APIKeys     []ABSAttack `json:"api_keys"`
	Usernames   []ABSAttack `json:"usernames"`
}

// The statuses of an attack list's items.
const (
	ABSActive   = "active"   // on the deny list now
	ABSExpired  = "expired"  // was deny-listed, is not any more (expired or removed)
	ABSReported = "reported" // found by a detector in report mode (or with abs_attack off): never listed
)

// ABSAttack is one item of the attack list: the identity (ip; cookie_name
// and cookie; token; api_key_name and api_key; username), its status,
// what found it and when, when its entry expires (null: never, or not
// listed) and the detection's evidence (null when the entry carries none).
type ABSAttack struct {
	IP           string          `json:"ip,omitempty"`
	CookieName   string          `json:"cookie_name,omitempty"`
	Cookie       string          `json:"cookie,omitempty"`
	Token        string          `json:"token,omitempty"`
	APIKeyName   string          `json:"api_key_name,omitempty"`
	APIKey       string          `json:"api_key,omitempty"`
	Username     string          `json:"username,omitempty"`
	Status       string          `json:"status"`
	AttackType   string          `json:"attack_type"`
	Detector     string          `json:"detector"`
	APIName      string          `json:"api_name"`
	DetectedTime string          `json:"detected_time"`
	Expires      *string         `json:"expires"`
	Evidence     json.RawMessage `json:"evidence"`
}

// NamedValue is a cookie or API key: its name and value.
type NamedValue struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ABSDelete is the body of DELETE /v4/abs/attacklist (the vendor ABS's):
// whole types, everything, or single identities. Only entries behavioural
// detection added (tag abs_generated) are removed.
type ABSDelete struct {
	DeleteAll            bool         `json:"delete_all,omitempty"`
	DeleteAllIPs         bool         `json:"delete_all_ips,omitempty"`
	DeleteAllCookies     bool         `json:"delete_all_cookies,omitempty"`
	DeleteAllOAuthTokens bool         `json:"delete_all_oauth_tokens,omitempty"`
	DeleteAllAPIKeys     bool         `json:"delete_all_api_keys,omitempty"`
	DeleteAllUsernames   bool         `json:"delete_all_usernames,omitempty"`
	IPs                  []string     `json:"ips,omitempty"`
	Cookies              []NamedValue `json:"cookies,omitempty"`
	OAuthTokens          []string     `json:"oauth_tokens,omitempty"`
	APIKeys              []NamedValue `json:"api_keys,omitempty"`
	Usernames            []string     `json:"usernames,omitempty"`
}

// ABSCounts counts attack list entries by identity type.
type ABSCounts struct {
	IPs         int `json:"ips"`
	Cookies     int `json:"cookies"`
	OAuthTokens int `json:"oauth_tokens"`
	APIKeys     int `json:"api_keys"`
	Usernames   int `json:"usernames"`
	Total       int `json:"total"`
}

// ABSDeleted is the reply of DELETE /v4/abs/attacklist: what was removed.
type ABSDeleted struct {
	Status  string    `json:"status"`
	Message string    `json:"status_message"`
	Removed ABSCounts `json:"removed"`
}

// ABSInfo is the reply of GET /abs: behavioural detection's settings
// (enabled: abs, enforcing: abs_attack), its configuration, the client
// identities it tracks now and every API's state.
type ABSInfo struct {
	Enabled        bool              `json:"enabled"`
	Enforcing      bool              `json:"enforcing"`
	TrainingPeriod string            `json:"training_period"`
	Window         string            `json:"window"`
	MaxClients     int               `json:"max_clients"`
	TrackedClients int               `json:"tracked_clients"`
	TTL            map[string]string `json:"ttl"` // by identity type; "0": never expires
	APIs           []ABSAPIStatus    `json:"apis"`
}

// ABSAPIStatus is one API's behavioural detection (GET /abs/{api_id}):
// training or enforcing, each detector's mode, each figure's threshold.
type ABSAPIStatus struct {
	APIID         string            `json:"api_id"`
	Training      bool              `json:"training"`
	TrainingUntil string            `json:"training_until"`
	Modes         map[string]string `json:"modes"`
	Figures       []ABSFigure       `json:"figures"`
}

// ABSFigure is a figure counted per client and window for one kind of
// identity (each learns its own normal), and its threshold.
type ABSFigure struct {
	Identity  string  `json:"identity"` // ip, token, cookie, api_key, username
	Figure    string  `json:"figure"`
	Detector  string  `json:"detector"`
	Windows   uint64  `json:"windows_learned"`
	Learned   float64 `json:"learned"`
	Threshold float64 `json:"threshold"`
	Override  bool    `json:"override"`
	Rule      string  `json:"rule"`
}

// ABSPolicy is an API's detection policy (PUT /abs/{api_id}/policy): a
// mode per detector (enforce, report, off) and a threshold per figure (0:
// the learned one); absent ones are the defaults.
type ABSPolicy struct {
	Modes      map[string]string  `json:"modes,omitempty"`
	Thresholds map[string]float64 `json:"thresholds,omitempty"`
}

// ABSPolicyReply is the reply of PUT and DELETE /abs/{api_id}/policy: the
// policy now in effect (what differs from the defaults).
type ABSPolicyReply struct {
	Status  string    `json:"status"`
	Message string    `json:"status_message"`
	APIID   string    `json:"api_id"`
	Policy  ABSPolicy `json:"policy"`
}
