package apidef

import (
	"strconv"
	"strings"

	"github.com/ase-project/ase/internal/wire"
)

// The structs below are the vendor's document layout, in its field order.
// Optional-by-protocol fields are pointers so that a REST API reads back
// without the WebSocket-only fields and vice versa, as in the seed.

type wireDoc struct {
	APIMetadata wireMetadata `json:"api_metadata"`
}

type wireMetadata struct {
	Protocol                 Protocol         `json:"protocol"`
	URL                      string           `json:"url"`
	Hostname                 string           `json:"hostname"`
	Cookie                   string           `json:"cookie"`
	CookieIdleTimeout        string           `json:"cookie_idle_timeout"`
	LogoutAPIEnabled         bool             `json:"logout_api_enabled"`
	CookiePersistenceEnabled bool             `json:"cookie_persistence_enabled"`
	OAuth2AccessToken        bool             `json:"oauth2_access_token"`
	APIKeyQS                 string           `json:"apikey_qs"`
	APIKeyHeader             string           `json:"apikey_header"`
	LoginURL                 string           `json:"login_url"`
	EnableBlocking           bool             `json:"enable_blocking"`
	APIMapping               wireMapping      `json:"api_mapping"`
	UsernameHeader           string           `json:"username_header,omitempty"`
	JWT                      *wireJWT         `json:"jwt,omitempty"`
	Enforcement              wireEnforcement  `json:"api_pattern_enforcement"`
	FlowControl              wire.FlowControl `json:"flow_control"`
	APIMemorySize            string           `json:"api_memory_size"`
	HealthCheck              bool             `json:"health_check"`
	HealthCheckInterval      int              `json:"health_check_interval"`
	HealthRetryCount         int              `json:"health_retry_count"`
	HealthURL                string           `json:"health_url"`
	ServerSSL                bool             `json:"server_ssl"`
	Servers                  []wire.Server    `json:"servers"`
	Decoy                    wireDecoy        `json:"decoy_config"`
}

type wireMapping struct {
	InternalURL string `json:"internal_url"`
}

// wireJWT is the jwt object, read back only when the definition sets it
// (as username_header): the vendor's own read-back omits both.
type wireJWT struct {
	Location string `json:"location"`
	Username string `json:"username"`
	ClientID string `json:"clientid"`
}

type wireEnforcement struct {
	ProtocolAllowed    string       `json:"protocol_allowed"`
	HTTPRedirect       wireRedirect `json:"http_redirect"`
	MethodsAllowed     []string     `json:"methods_allowed"`
	ContentTypeAllowed string       `json:"content_type_allowed"`
	ErrorCode          string       `json:"error_code"`
	ErrorDef           string       `json:"error_def"`
	ErrorMessageBody   string       `json:"error_message_body"`
}

type wireRedirect struct {
	ResponseCode string `json:"response_code"`
	ResponseDef  string `json:"response_def"`
	HTTPSURL     string `json:"https_url"`
}

type wireDecoy struct {
	DecoyEnabled    bool     `json:"decoy_enabled"`
	ResponseCode    int      `json:"response_code"`
	ResponseDef     string   `json:"response_def"`
	ResponseMessage string   `json:"response_message"`
	DecoySubpaths   []string `json:"decoy_subpaths"`
}

func (a *API) wire() wireDoc {
	e := a.Enforcement
	redirectCode := ""
	if e.Redirect.Code != 0 {
		redirectCode = strconv.Itoa(e.Redirect.Code)
	}
	var jwt *wireJWT
	if a.JWT.Location != "" || a.JWT.Username != "" || a.JWT.ClientID != "" {
		jwt = &wireJWT{Location: a.JWT.Location, Username: a.JWT.Username, ClientID: a.JWT.ClientID}
	}
	servers := make([]wire.Server, len(a.Servers))
	for i, s := range a.Servers {
		servers[i] = a.WireServer(s)
	}
	return wireDoc{APIMetadata: wireMetadata{
		Protocol:                 a.Protocol,
		URL:                      a.URL,
		Hostname:                 a.Hostname,
		Cookie:                   a.Cookie,
		CookieIdleTimeout:        a.CookieIdleTimeout.String(),
		LogoutAPIEnabled:         a.LogoutAPIEnabled,
		CookiePersistenceEnabled: a.CookiePersistenceEnabled,
		OAuth2AccessToken:        a.OAuth2AccessToken,
		APIKeyQS:                 a.APIKeyQS,
		APIKeyHeader:             a.APIKeyHeader,
		LoginURL:                 a.LoginURL,
		EnableBlocking:           a.EnableBlocking,
		APIMapping:               wireMapping{InternalURL: a.InternalURL},
		UsernameHeader:           a.UsernameHeader,
		JWT:                      jwt,
		Enforcement: wireEnforcement{
			ProtocolAllowed:    strings.Join(e.ProtocolAllowed, ","),
			HTTPRedirect:       wireRedirect{ResponseCode: redirectCode, ResponseDef: e.Redirect.Def, HTTPSURL: e.Redirect.HTTPSURL},
			MethodsAllowed:     nonNil(e.MethodsAllowed),
			ContentTypeAllowed: strings.Join(e.ContentTypeAllowed, ","),
			ErrorCode:          strconv.Itoa(e.ErrorCode),
			ErrorDef:           e.ErrorDef,
			ErrorMessageBody:   e.ErrorMessageBody,
		},
		FlowControl:         a.WireFlowControl(),
		APIMemorySize:       a.APIMemorySize.String(),
		HealthCheck:         a.HealthCheck,
		HealthCheckInterval: a.HealthCheckInterval,
		HealthRetryCount:    a.HealthRetryCount,
		HealthURL:           a.HealthURL,
		ServerSSL:           a.ServerSSL,
		Servers:             servers,
		Decoy: wireDecoy{
			DecoyEnabled:    a.Decoy.Enabled,
			ResponseCode:    a.Decoy.ResponseCode,
			ResponseDef:     a.Decoy.ResponseDef,
			ResponseMessage: a.Decoy.ResponseMessage,
			DecoySubpaths:   nonNil(a.Decoy.Subpaths),
		},
	}}
}

// WireFlowControl returns the API's flow_control as shown by the
// management API: byte thresholds only for ws APIs.
func (a *API) WireFlowControl() wire.FlowControl {
	fc := wire.FlowControl{
		ClientSpikeThreshold:     a.FlowControl.ClientSpikeThreshold.String(),
		ServerConnectionQueueing: a.FlowControl.ServerConnectionQueueing,
	}
	if a.Protocol == WS {
		in, out := a.FlowControl.BytesInThreshold.String(), a.FlowControl.BytesOutThreshold.String()
		fc.BytesInThreshold, fc.BytesOutThreshold = &in, &out
	}
	return fc
}

// WireServer returns s as shown by the management API: the spike
// threshold only for http APIs.
func (a *API) WireServer(s Server) wire.Server {
	ws := wire.Server{Host: s.Host, Port: s.Port, ServerConnectionQuota: s.ConnectionQuota}
	if a.Protocol != WS {
		r := s.SpikeThreshold.String()
		ws.ServerSpikeThreshold = &r
	}
	return ws
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
