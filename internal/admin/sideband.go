package admin

import (
	"net/http"
	"time"

	"github.com/ase-project/ase/internal/catalog"
	"github.com/ase-project/ase/internal/sbauth"
	"github.com/ase-project/ase/internal/wire"
)

func (h *Handler) sidebandRoutes() []*Route {
	return []*Route{
		{Method: "GET", Path: "/sideband/authentication", Summary: "Whether sideband calls must authenticate", handle: h.getSidebandAuth},
		{Method: "POST", Path: "/sideband/authentication", Query: []string{"status"}, Action: "update_sideband_authentication", Summary: "Enable or disable sideband authentication", handle: h.setSidebandAuth},
		{Method: "GET", Path: "/sideband/token", Summary: "List sideband tokens", handle: h.listTokens},
		{Method: "POST", Path: "/sideband/token", Action: "create_sideband_token", Summary: "Create a sideband token", handle: h.createToken},
		{Method: "PUT", Path: "/sideband/token", Action: "import_sideband_token", Summary: "Import a sideband token", handle: h.importToken},
		{Method: "DELETE", Path: "/sideband/token", Action: "delete_sideband_token", Summary: "Delete a sideband token", handle: h.deleteToken},
		{Method: "GET", Path: "/sideband/secret", Summary: "List shared secrets (never their values)", handle: h.listSecrets},
		{Method: "POST", Path: "/sideband/secret", Action: "create_shared_secret", Summary: "Create a shared secret (inactive until activated)", handle: h.createSecret},
		{Method: "PUT", Path: "/sideband/secret", Action: "update_shared_secret", Summary: "Activate or deactivate a shared secret", handle: h.activateSecret},
		{Method: "DELETE", Path: "/sideband/secret", Action: "delete_shared_secret", Summary: "Delete an inactive shared secret", handle: h.deleteSecret},
		{Method: "GET", Path: "/sideband/secret/header", Summary: "The header that carries shared secrets", handle: h.getSecretHeader},
		{Method: "PUT", Path: "/sideband/secret/header", Action: "update_shared_secret_header", Summary: "Set the header that carries shared secrets", handle: h.setSecretHeader},
		{Method: "DELETE", Path: "/sideband/secret/header", Action: "reset_shared_secret_header", Summary: "Reset the shared-secret header to CLIENT-TOKEN", handle: h.resetSecretHeader},
	}
}

func sidebandAuthStatus(on bool) wire.Status {
	return wire.Status{Status: enabledWord(on), Message: "Sideband authentication is " + enabledWord(on)}
}

func (h *Handler) getSidebandAuth(c *call) (any, error) {
	on, err := catalog.GetSetting(c.ctx, c.reader(), catalog.SidebandAuthentication, h.d.Config.EnableSidebandAuthentication)
	return sidebandAuthStatus(on), err
}

func (h *Handler) setSidebandAuth(c *call) (any, error) {
	v := c.query.Get("status")
	c.params = map[string]any{"status": v}
	if v != "enable" && v != "disable" {
		return nil, fail(http.StatusForbidden, wire.StatusInvalidValue, "query parameter status contains invalid value")
	}
	on := v == "enable"
	if err := c.commit(catalog.SetSetting(catalog.SidebandAuthentication, on)); err != nil {
		return nil, err
	}
	return sidebandAuthStatus(on), nil
}

type tokenBody struct {
	Token string `json:"token"`
}

// listTokens lists the sideband tokens, whole for those who can change
// configuration (as the vendor lists them to its admin: they manage the
// gateways' credentials), and only their first 6 characters followed by
// "..." for read users and API keys: a token is a gateway's credential for
// the data port, and a read-only credential must not yield one.
func (h *Handler) listTokens(c *call) (any, error) {
	ts, err := sbauth.ListTokens(c.ctx, c.reader())
	out := wire.SidebandTokens{Tokens: []wire.SidebandToken{}}
	whole := !c.who.readOnly() && c.who.role.CanWrite()
	for _, t := range ts {
		token := t.Token
		if !whole && len(token) > 6 {
			token = token[:6] + "..."
		}
		out.Tokens = append(out.Tokens, wire.SidebandToken{Token: token, CreatedAt: t.CreatedAt.In(h.d.Config.Location).Format(wire.TokenTimeLayout)})
	}
	return out, err
}

func (h *Handler) createToken(c *call) (any, error) {
	token := sbauth.NewToken()
	b, err := sbauth.ImportToken(c.ctx, c.reader(), token, time.Now())
	if err != nil {
		return nil, err
	}
	if err := c.commit(b); err != nil {
		return nil, err
	}
	return wire.TokenCreated{Status: wire.StatusTokenCreated, Token: token}, nil
}

func (h *Handler) tokenFromBody(c *call) (string, error) {
	body, err := c.requireBody()
	if err != nil {
		return "", err
	}
	var tb tokenBody
	if err := strictJSON(body, &tb); err != nil {
		return "", err
	}
	c.params = map[string]any{"token": tb.Token}
	return tb.Token, nil
}

func (h *Handler) importToken(c *call) (any, error) {
	token, err := h.tokenFromBody(c)
	if err != nil {
		return nil, err
	}
	b, err := sbauth.ImportToken(c.ctx, c.reader(), token, time.Now())
	if err != nil {
		return nil, err
	}
	return success("Sideband token " + token + " imported."), c.commit(b)
}

func (h *Handler) deleteToken(c *call) (any, error) {
	token, err := h.tokenFromBody(c)
	if err != nil {
		return nil, err
	}
	b, err := sbauth.DeleteToken(c.ctx, c.reader(), token)
	if err != nil {
		return nil, err
	}
	return success("Sideband token " + token + " deleted."), c.commit(b)
}

func (h *Handler) listSecrets(c *call) (any, error) {
	ss, err := sbauth.ListSecrets(c.ctx, c.reader())
	out := wire.SharedSecrets{Secrets: []wire.SharedSecret{}}
	for _, s := range ss {
		out.Secrets = append(out.Secrets, wire.SharedSecret{Name: s.Name, Active: s.Active, CreatedAt: s.CreatedAt.In(h.d.Config.Location).Format(time.RFC3339)})
	}
	return out, err
}

func (h *Handler) createSecret(c *call) (any, error) {
	var req struct {
		Name   string `json:"name"`
		Secret string `json:"secret"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"name": req.Name}
	b, err := sbauth.CreateSecret(c.ctx, c.reader(), req.Name, req.Secret, time.Now())
	if err != nil {
		return nil, err
	}
	return success("shared secret " + req.Name + " created; it is accepted once activated"), c.commit(b)
}

func (h *Handler) activateSecret(c *call) (any, error) {
	var req struct {
		Name   string `json:"name"`
		Active *bool  `json:"active"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	if req.Active == nil {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "active is required (true or false)")
	}
	c.params = map[string]any{"name": req.Name, "active": *req.Active}
	b, err := sbauth.SetActive(c.ctx, c.reader(), req.Name, *req.Active)
	if err != nil {
		return nil, err
	}
	state := "inactive"
	if *req.Active {
		state = "active"
	}
	return success("shared secret " + req.Name + " is now " + state), c.commit(b)
}

func (h *Handler) deleteSecret(c *call) (any, error) {
	var req struct {
		Name string `json:"name"`
	}
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"name": req.Name}
	b, err := sbauth.DeleteSecret(c.ctx, c.reader(), req.Name)
	if err != nil {
		return nil, err
	}
	return success("shared secret " + req.Name + " deleted"), c.commit(b)
}

func (h *Handler) getSecretHeader(c *call) (any, error) {
	hd, err := sbauth.GetHeader(c.ctx, c.reader())
	return wire.SecretHeader{Header: hd}, err
}

func (h *Handler) setSecretHeader(c *call) (any, error) {
	var req wire.SecretHeader
	if err := c.decodeBody(&req); err != nil {
		return nil, err
	}
	c.params = map[string]any{"header": req.Header}
	if req.Header == "" {
		return nil, fail(http.StatusForbidden, wire.StatusValidation, "header is required (DELETE resets it to %s)", sbauth.DefaultHeader)
	}
	b, err := sbauth.SetHeader(req.Header)
	if err != nil {
		return nil, err
	}
	return success("shared secret header is now " + http.CanonicalHeaderKey(req.Header)), c.commit(b)
}

func (h *Handler) resetSecretHeader(c *call) (any, error) {
	b, _ := sbauth.SetHeader("")
	return success("shared secret header reset to " + sbauth.DefaultHeader), c.commit(b)
}
