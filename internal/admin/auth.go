package admin

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/ase-project/ase/internal/accounts"
	"github.com/ase-project/ase/internal/lockout"
	"github.com/ase-project/ase/internal/wire"
)

// Credentials, strongest first in authenticate.
const (
	authSecretKey = "secret_key" // x-ase-access-key / x-ase-secret-key
	authSession   = "session"    // session_id from /api/authentication (password)
	authX509      = "x509"       // session_id from a certificate login
	authAPIKey    = "apikey"     // Authorization: apikey <token>
)

// principal is who a request acts for.
type principal struct {
	user    string
	role    accounts.Role
	auth    string
	session string // the session's handle (never its ID), for session and x509 logins
	apiKey  string // the key's ID, for API keys
}

// readOnly reports whether the credential can never change configuration.
func (p principal) readOnly() bool { return p.auth == authAPIKey }

// authenticate finds who a request acts for: an API key, a session, or the
// vendor's access and secret key headers. An address that keeps failing
// is slowed down and then refused. A credential given twice is refused
// before anything is checked: which of the two would count is ambiguous.
func (h *Handler) authenticate(c *call) (principal, error) {
	addr := clientAddr(c.r)
	if left := h.d.Guard.Locked(addr); left > 0 {
		return principal{}, tooMany(left)
	}
	if err := duplicateCredential(c); err != nil {
		return principal{}, err
	}
	if c.route.Public {
		return principal{}, nil
	}
	hd := c.r.Header
	if token, ok := apiKeyToken(hd.Get("Authorization")); ok {
		var u *accounts.User
		var k *accounts.APIKey
		if err := h.guarded(c, "the API key is not valid", func() bool {
			var found bool
			u, k, found = h.d.Accounts.AuthenticateAPIKey(token)
			return found
		}); err != nil {
			return principal{}, err
		}
		return principal{user: u.Name, role: u.Role, auth: authAPIKey, apiKey: k.ID}, nil
	}
	if id := sessionID(c.r); id != "" {
		s, ok := h.d.Sessions.Touch(c.ctx, id)
		var u *accounts.User
		if ok {
			// Gone, or with another password since the login: ended.
			if u = h.d.Accounts.User(s.User); !s.Of(u) {
				u = nil
			}
		}
		if u == nil {
			// An expired session is not a guess: no slow-down.
			return principal{}, authError(c, http.StatusUnauthorized, "the session has expired or does not exist: log in again")
		}
		auth := authSession
		if s.Method == "x509" {
			auth = authX509
		}
		return principal{user: u.Name, role: u.Role, auth: auth, session: s.Handle}, nil
	}
	access, hasAccess := headerValue(hd, "x-ase-access-key")
	secret, hasSecret := headerValue(hd, "x-ase-secret-key")
	switch {
	case !hasAccess && c.route.Abs:
		return principal{}, authError(c, http.StatusUnauthorized, "authentication required: log in at /api/authentication, or use an API key or the x-ase-access-key and x-ase-secret-key headers")
	case !hasAccess:
		return principal{}, fail(http.StatusForbidden, wire.StatusFail, "x-ase-access-key header missing")
	case !hasSecret:
		return principal{}, fail(http.StatusForbidden, wire.StatusFail, "x-ase-secret-key header missing")
	}
	// Only the built-in admin has an access key; any other name fails
	// exactly like a wrong password.
	var u *accounts.User
	if err := h.guarded(c, "authorization failure", func() bool {
		var ok bool
		u, ok = h.d.Accounts.Authenticate(c.ctx, accounts.Admin, secret)
		return ok && access == accounts.Admin
	}); err != nil {
		return principal{}, err
	}
	return principal{user: u.Name, role: u.Role, auth: authSecretKey}, nil
}

// guarded runs check, a check of credentials that can be guessed, within
// the client address's brute-force budget: a slot is taken before the
// check (waiting for one while every slot is held by a check in
// progress), then freed on success or kept as a failure. So however many
// guesses arrive at once, at most the guard's Limit wrong ones are checked
// per window. It returns nil on success, else the error to send (msg on
// the /api routes).
func (h *Handler) guarded(c *call, msg string, check func() bool) error {
	a, left, err := h.d.Guard.Begin(c.ctx, clientAddr(c.r))
	if err != nil {
		return err
	}
	if left > 0 {
		return tooMany(left)
	}
	defer a.Cancel() // frees the slot if check panics; nothing once ended
	if check() {
		a.Succeeded()
		return nil
	}
	return h.failed(c, a, msg)
}

// failed ends a failed attempt, delays the reply as the address
// accumulates failures, and returns the error to send.
func (h *Handler) failed(c *call, a *lockout.Attempt, msg string) error {
	addr := clientAddr(c.r)
	delay, locked := a.Failed()
	h.d.Metrics.AuthFailure("management")
	h.d.Log.Warn("management authentication failed", "client", addr.String(), "path", c.r.URL.Path)
	if locked {
		return tooMany(h.d.Guard.Locked(addr))
	}
	h.d.Sleep(c.ctx, delay)
	if c.route.Abs {
		return authError(c, http.StatusUnauthorized, msg)
	}
	return fail(http.StatusForbidden, wire.StatusFail, "authorization failure")
}

// authError is an authentication failure in the /api style.
func authError(c *call, code int, msg string) *Error {
	if !c.route.Abs {
		return fail(http.StatusForbidden, wire.StatusFail, "authorization failure")
	}
	e := fail(code, wire.StatusFail, "%s", msg)
	e.Type = "AuthenticationFailure"
	return e
}

// authorize checks what the principal may do on the route.
func (h *Handler) authorize(c *call) error {
	rt, who := c.route, c.who
	if rt.Write() && crossSite(c.r) {
		// A browser sent a change another site's page asked for: the
		// session cookie (SameSite=Strict) would not have come with it in
		// today's browsers, but HTTP Basic credentials a browser
		// remembers would; refused whatever the credential.
		e := fail(http.StatusForbidden, wire.StatusPermissionDenied, "a change from another site's page (cross-site request forgery) is refused: Origin %q, Sec-Fetch-Site %q", c.r.Header.Get("Origin"), c.r.Header.Get("Sec-Fetch-Site"))
		e.Type = "PermissionDenied"
		return e
	}
	switch {
	case rt.Public:
		return nil
	case rt.Write() && who.readOnly():
		return denied(c, "API keys are read-only: they can never change configuration; log in to make changes")
	case rt.AdminOnly && who.role != accounts.RoleAdmin:
		return denied(c, "user %s has the %s role; this needs the admin role", who.user, who.role)
	case rt.Write() && !rt.AnyRole && !who.role.CanWrite():
		return denied(c, "user %s has the read role: it can read everything and change nothing", who.user)
	}
	return nil
}

// crossSite reports whether a browser sent r on behalf of a page of
// another origin. Browsers say where a request comes from (Sec-Fetch-Site,
// and Origin on every POST, PUT and DELETE); scripts and the CLI send
// neither, and cannot be made to send a request by another site's page.
// Only same-origin requests (the console's) and requests a person made
// directly (Sec-Fetch-Site: none) are taken.
func crossSite(r *http.Request) bool {
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return true
	}
	o, sent := r.Header["Origin"]
	if !sent {
		return false
	}
	if len(o) != 1 {
		return true
	}
	u, err := url.Parse(o[0])
	if err != nil || u.Host == "" {
		return true // "null": a sandboxed page, a file, a redirect across origins
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return !strings.EqualFold(u.Scheme, scheme) || !strings.EqualFold(u.Host, r.Host)
}

func denied(c *call, format string, args ...any) *Error {
	e := fail(http.StatusForbidden, wire.StatusPermissionDenied, format, args...)
	e.Type = "PermissionDenied"
	return e
}

// apiKeyToken parses "Authorization: apikey <token>" (scheme in any case).
func apiKeyToken(h string) (string, bool) {
	const scheme = "apikey "
	h = strings.TrimSpace(h)
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return strings.TrimSpace(h[len(scheme):]), true
}

// credentialHeaders are the headers the management API reads credentials
// from (the session_id cookie is counted with its header).
var credentialHeaders = []string{"x-ase-access-key", "x-ase-secret-key", "Authorization"}

// duplicateCredential refuses a request that gives a credential more than
// once: two x-ase-access-key, x-ase-secret-key or Authorization headers,
// or more than one session_id (cookies and header together). Only one of
// them would be checked, and something in front of ASE may read another.
func duplicateCredential(c *call) error {
	name := ""
	for _, h := range credentialHeaders {
		if len(c.r.Header.Values(h)) > 1 {
			name = "the " + h + " header"
			break
		}
	}
	if name == "" && len(c.r.Header.Values("session_id"))+len(c.r.CookiesNamed("session_id")) > 1 {
		name = "the session_id (cookie or header)"
	}
	if name == "" {
		return nil
	}
	e := fail(http.StatusBadRequest, wire.StatusFail, "%s is given more than once; send each credential once", name)
	e.Type = "InvalidAuthenticationRequest"
	return e
}

// sessionID reads the session from the session_id cookie or header.
func sessionID(r *http.Request) string {
	if v := r.Header.Get("session_id"); v != "" {
		return strings.TrimSpace(v)
	}
	if c, err := r.Cookie("session_id"); err == nil {
		return c.Value
	}
	return ""
}

// errNoCredentials means a Basic Authorization header is missing or
// malformed.
var errNoCredentials = errors.New("no credentials")

// basicAuth parses "Authorization: Basic base64(user:password)": the user
// cannot contain ':', the password can. Both must be UTF-8 and non-empty.
func basicAuth(h string) (user, password string, err error) {
	const scheme = "basic "
	h = strings.TrimSpace(h)
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", "", errNoCredentials
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(h[len(scheme):]))
	if err != nil {
		return "", "", errNoCredentials
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || password == "" || !validText(user) || !validText(password) {
		return "", "", errNoCredentials
	}
	return user, password, nil
}

func validText(s string) bool {
	for _, r := range s {
		if r == 0xfffd || r < 0x20 {
			return false
		}
	}
	return true
}
