package admin

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/ase-project/ase/internal/accounts"
)

// The login methods: local (password) always; x509 when client_ca_file is
// set (and the management API speaks TLS).
const (
	methodLocal = "local"
	methodX509  = "x509"
)

func (h *Handler) accountRoutes() []*Route {
	const users = "/api/configuration/aaa/local_database/users"
	const keys = "/api/configuration/aaa/local_database/api_keys"
	return []*Route{
		{Method: "GET", Path: "/api/authentication", Abs: true, Public: true, Query: []string{"login_method", "type"}, Summary: "Log in (HTTP Basic, or a TLS client certificate with type=x509); sets the session_id cookie", handle: h.login},
		{Method: "DELETE", Path: "/api/authentication", Abs: true, Summary: "Log out", handle: h.logout},
		{Method: "GET", Path: "/api/authentication/login_methods", Abs: true, Public: true, Summary: "The login methods", handle: h.loginMethods},

		{Method: "GET", Path: users, Abs: true, AdminOnly: true, Summary: "List local users", handle: h.listUsers},
		{Method: "POST", Path: users, Abs: true, AdminOnly: true, Action: "create_user", Summary: `Create a user {"name", "password", "role"}`, handle: h.createUser},
		{Method: "GET", Path: users + "/{name}", Abs: true, AdminOnly: true, Summary: "Read a user", handle: h.getUser},
		{Method: "PUT", Path: users + "/{name}", Abs: true, AdminOnly: true, Action: "update_user", Summary: `Change a user's password and/or role {"password", "role"}`, handle: h.updateUser},
		{Method: "DELETE", Path: users + "/{name}", Abs: true, AdminOnly: true, Action: "delete_user", Summary: "Delete a user (not the built-in admin)", handle: h.deleteUser},
		{Method: "POST", Path: users + "/{name}/api_keys", Abs: true, AdminOnly: true, Action: "create_api_key", Summary: `Create an API key for user {name} (admin role) {"name"}; the token is shown only in this reply`, handle: h.createAPIKeyFor},

		{Method: "GET", Path: keys, Abs: true, Summary: "List API keys (admins: everyone's; users: their own)", handle: h.listAPIKeys},
		{Method: "POST", Path: keys, Abs: true, AnyRole: true, Action: "create_api_key", Summary: `Create an API key for the logged-in user {"name"}; the token is shown only in this reply`, handle: h.createAPIKey},
		{Method: "GET", Path: keys + "/{key}", Abs: true, Summary: "Read an API key (never its token)", handle: h.getAPIKey},
		{Method: "DELETE", Path: keys + "/{key}", Abs: true, AnyRole: true, Action: "delete_api_key", Summary: "Delete an API key (admins: any; users: their own)", handle: h.deleteAPIKey},
	}
}

func (h *Handler) loginMethods(c *call) (any, error) {
	methods := []map[string]string{{"name": methodLocal, "type": "password"}}
	if h.d.ClientCAs != nil {
		methods = append(methods, map[string]string{"name": methodX509, "type": "x509"})
	}
	return map[string]any{"login_methods": methods}, nil
}

// login authenticates with HTTP Basic (type=password) or the TLS client
// certificate (type=x509, verified by the TLS handshake against
// client_ca_file; its Subject Common Name is the user name) and opens a
// session.
func (h *Handler) login(c *call) (any, error) {
	typ, method := c.query.Get("type"), c.query.Get("login_method")
	if typ == "" {
		typ = "password"
	}
	if method == "" {
		method = map[string]string{"password": methodLocal, "x509": methodX509}[typ]
	}
	var u *accounts.User
	switch {
	case typ == "password" && method == methodLocal:
		name, password, err := basicAuth(c.r.Header.Get("Authorization"))
		if err != nil {
			return nil, apiError(http.StatusBadRequest, "InvalidAuthenticationRequest", "Unable to authenticate: no valid credentials found (send them with HTTP Basic)")
		}
		if err := h.guarded(c, loginFailure, func() bool {
			var ok bool
			u, ok = h.d.Accounts.Authenticate(c.ctx, name, password)
			return ok
		}); err != nil {
			return nil, err
		}
	case typ == "x509" && method == methodX509 && h.d.ClientCAs != nil:
		if c.r.TLS == nil || len(c.r.TLS.VerifiedChains) == 0 {
			return nil, apiError(http.StatusBadRequest, "InvalidAuthenticationRequest", "Unable to authenticate: no client certificate signed by client_ca_file was presented")
		}
		cert := c.r.TLS.VerifiedChains[0][0]
		if err := h.guarded(c, loginFailure, func() bool {
			u = h.d.Accounts.User(cert.Subject.CommonName)
			return u != nil
		}); err != nil {
			return nil, err
		}
	default:
		return nil, apiError(http.StatusBadRequest, "InvalidAuthenticationRequest", "unknown login method %q of type %q (see /api/authentication/login_methods)", method, typ)
	}
	s, err := h.d.Sessions.Create(c.ctx, u, typ)
	if err != nil {
		return nil, err
	}
	http.SetCookie(c.w, &http.Cookie{
		Name: "session_id", Value: s.ID, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode,
		Secure: c.r.TLS != nil,
	})
	h.d.Log.Info("management login", "user", u.Name, "method", typ, "client", c.client)
	return map[string]any{"meta": map[string]any{
		"href": "/api/authentication", "next": "/api", "transaction": "/api/transaction",
		"remaining_seconds": int(h.d.Sessions.Timeout / time.Second),
		// Beyond the vendor's meta: who logged in, for the console.
		"user": u.Name, "role": string(u.Role),
	}}, nil
}

// loginFailure is the message of a failed login (401 AuthenticationFailure).
const loginFailure = "Authenticating the user with the given credentials has failed."

func (h *Handler) logout(c *call) (any, error) {
	if c.who.session == "" {
		return nil, apiError(http.StatusBadRequest, "InvalidRequest", "not logged in with a session")
	}
	if err := h.d.Sessions.End(c.ctx, c.who.session); err != nil {
		return nil, err
	}
	http.SetCookie(c.w, &http.Cookie{Name: "session_id", Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: c.r.TLS != nil})
	return map[string]any{"meta": map[string]any{"href": "/api/authentication"}}, nil
}

// endSessions deletes a user's sessions once their password changed or
// they were deleted: those sessions already no longer work (they are bound
// to the password, see accounts.Session.Of), so a failure only leaves
// records for the sweep.
func (h *Handler) endSessions(user string) {
	if err := h.d.Sessions.EndUser(context.Background(), user); err != nil {
		h.d.Log.Warn("deleting the sessions of a changed user failed; the sweep will", "user", user, "error", err)
	}
}

func userItem(u *accounts.User) map[string]any {
	return map[string]any{
		"key":  u.Name,
		"body": map[string]any{"name": u.Name, "role": u.Role, "created_at": u.CreatedAt.Format(time.RFC3339)},
		"meta": map[string]string{"href": "/api/configuration/aaa/local_database/users/" + u.Name},
	}
}

func (h *Handler) listUsers(c *call) (any, error) {
	us, err := accounts.ListUsers(c.ctx, c.reader())
	items := []map[string]any{}
	for _, u := range us {
		items = append(items, userItem(u))
	}
	return map[string]any{"items": items}, err
}

func (h *Handler) getUser(c *call) (any, error) {
	u, err := accounts.GetUser(c.ctx, c.reader(), c.params1("name"))
	if err != nil {
		return nil, err
	}
	return userItem(u), nil
}

type userBody struct {
	Name     string        `json:"name"`
	Password string        `json:"password"`
	Role     accounts.Role `json:"role"`
}

func (h *Handler) createUser(c *call) (any, error) {
	var req userBody
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"name": req.Name, "role": req.Role}
	b, err := accounts.CreateUser(c.ctx, c.reader(), req.Name, req.Password, req.Role)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return reply{code: http.StatusCreated, body: map[string]any{"key": req.Name, "meta": map[string]string{"href": "/api/configuration/aaa/local_database/users/" + req.Name}}}, nil
}

func (h *Handler) updateUser(c *call) (any, error) {
	name := c.params1("name")
	var req struct {
		Password string        `json:"password"`
		Role     accounts.Role `json:"role"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"name": name, "role": req.Role, "password_changed": req.Password != ""}
	b, err := accounts.UpdateUser(c.ctx, c.reader(), name, req.Password, req.Role)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	if req.Password != "" && !c.staged {
		h.endSessions(name) // a new password ends the old logins
	}
	return map[string]any{"key": name, "meta": map[string]string{"href": "/api/configuration/aaa/local_database/users/" + name}}, nil
}

func (h *Handler) deleteUser(c *call) (any, error) {
	name := c.params1("name")
	c.params = map[string]any{"name": name}
	b, err := accounts.DeleteUser(c.ctx, c.reader(), name)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	if !c.staged {
		h.endSessions(name)
	}
	return map[string]any{"key": name}, nil
}

func keyItem(k *accounts.APIKey, token string) map[string]any {
	body := map[string]any{"name": k.Name, "username": k.Username, "login_method": k.LoginMethod, "created_at": k.CreatedAt.Format(time.RFC3339)}
	if token != "" {
		body["token"] = token
	}
	return map[string]any{"key": k.ID, "body": body, "meta": map[string]string{"href": "/api/configuration/aaa/local_database/api_keys/" + k.ID}}
}

func (h *Handler) listAPIKeys(c *call) (any, error) {
	owner := c.who.user
	if c.who.role == accounts.RoleAdmin {
		owner = ""
	}
	ks, err := accounts.ListAPIKeys(c.ctx, c.reader(), owner)
	items := []map[string]any{}
	for _, k := range ks {
		items = append(items, keyItem(k, ""))
	}
	return map[string]any{"items": items}, err
}

func (h *Handler) ownKey(c *call) (*accounts.APIKey, error) {
	k, err := accounts.GetAPIKey(c.ctx, c.reader(), c.params1("key"))
	if err != nil {
		return nil, err
	}
	if k.Username != c.who.user && c.who.role != accounts.RoleAdmin {
		// Another user's key is as good as absent.
		return nil, accounts.ErrUnknownAPIKey
	}
	return k, nil
}

func (h *Handler) getAPIKey(c *call) (any, error) {
	k, err := h.ownKey(c)
	if err != nil {
		return nil, err
	}
	return keyItem(k, ""), nil
}

func (h *Handler) createAPIKey(c *call) (any, error) {
	if c.who.session == "" {
		if c.who.user == accounts.Admin {
			return nil, accounts.ErrAdminAPIKey
		}
		return nil, apiError(http.StatusBadRequest, "InvalidRequest", "API keys are created by a logged-in user: log in at /api/authentication")
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	method := methodLocal
	if c.who.auth == authX509 {
		method = methodX509
	}
	c.params = map[string]any{"name": req.Name}
	k, token, b, err := accounts.CreateAPIKey(c.ctx, c.reader(), c.who.user, method, req.Name)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	c.params["key"] = k.ID
	return reply{code: http.StatusCreated, body: keyItem(k, token)}, nil
}

// createAPIKeyFor creates a key for another user. The vendor lets users
// create only their own; an admin, who can reset any password and log in
// as that user anyway, does it here in one audited step (the audit names
// the admin and the key's user), e.g. for a metrics scraper's read-only
// account that has no password anyone knows.
func (h *Handler) createAPIKeyFor(c *call) (any, error) {
	user := c.params1("name")
	var req struct {
		Name string `json:"name"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"name": req.Name, "username": user}
	k, token, b, err := accounts.CreateAPIKey(c.ctx, c.reader(), user, methodLocal, req.Name)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	c.params["key"] = k.ID
	return reply{code: http.StatusCreated, body: keyItem(k, token)}, nil
}

func (h *Handler) deleteAPIKey(c *call) (any, error) {
	k, err := h.ownKey(c)
	if err != nil {
		return nil, err
	}
	c.params = map[string]any{"key": k.ID, "owner": k.Username}
	b, err := accounts.DeleteAPIKey(c.ctx, c.reader(), k.ID)
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return map[string]any{"key": k.ID}, nil
}

// errorType maps account errors to the /api error types.
func accountError(err error) *Error {
	switch {
	case errors.Is(err, accounts.ErrUserExists):
		return apiError(http.StatusConflict, "ObjectExists", "%v", err)
	case errors.Is(err, accounts.ErrUnknownUser), errors.Is(err, accounts.ErrUnknownAPIKey):
		return apiError(http.StatusNotFound, "NotFound", "%v", err)
	case errors.Is(err, accounts.ErrBuiltinAdmin), errors.Is(err, accounts.ErrAdminAPIKey):
		return apiError(http.StatusForbidden, "PermissionDenied", "%v", err)
	case errors.Is(err, accounts.ErrInvalidRole), errors.Is(err, accounts.ErrInvalidName), errors.Is(err, accounts.ErrNothingChanged),
		errors.Is(err, accounts.ErrAPIKeyName), errors.Is(err, accounts.ErrPasswordTooShort):
		return apiError(http.StatusBadRequest, "InvalidRequest", "%v", err)
	}
	return nil
}
