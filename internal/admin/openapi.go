package admin

import (
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// OpenAPI returns an OpenAPI 3 description of the management API, built
// from the route table so that it cannot drift from what is served.
func OpenAPI(version string) map[string]any {
	paths := map[string]map[string]any{}
	for _, rt := range RouteTable() {
		for _, p := range rt.FullPaths() {
			if paths[p] == nil {
				paths[p] = map[string]any{}
			}
			paths[p][strings.ToLower(rt.Method)] = operation(rt, p)
		}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "ASE management API",
			"version":     version,
			"description": "Every /v4/ase path also exists under /v5/ase with identical behaviour, and the attack list of behavioural detection under /v4/abs and /v5/abs (the vendor ABS's path). Authenticate with the x-ase-access-key and x-ase-secret-key headers, a session_id cookie (or header) from GET /api/authentication, or Authorization: apikey <token> (read-only).",
		},
		"servers": []map[string]string{{"url": "http://127.0.0.1:8010"}},
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"accessKey": map[string]string{"type": "apiKey", "in": "header", "name": "x-ase-access-key"},
				"secretKey": map[string]string{"type": "apiKey", "in": "header", "name": "x-ase-secret-key"},
				"session":   map[string]string{"type": "apiKey", "in": "cookie", "name": "session_id"},
				"apiKey":    map[string]string{"type": "apiKey", "in": "header", "name": "Authorization", "description": "apikey <token>; read-only"},
				"basic":     map[string]string{"type": "http", "scheme": "basic"},
			},
			"schemas": map[string]any{
				"Status": map[string]any{"type": "object", "properties": map[string]any{
					"status": map[string]string{"type": "string"}, "status_message": map[string]string{"type": "string"},
				}},
				"APIError": map[string]any{"type": "object", "properties": map[string]any{
					"error": map[string]any{"type": "object", "properties": map[string]any{
						"type": map[string]string{"type": "string"}, "message": map[string]string{"type": "string"},
					}},
				}},
			},
		},
		"security": []map[string][]string{{"accessKey": {}, "secretKey": {}}, {"session": {}}, {"apiKey": {}}},
		"paths":    paths,
	}
}

func operation(rt Route, fullPath string) map[string]any {
	okCode, okType := "200", "application/json"
	if created[rt.Method+" "+rt.Path] {
		okCode = "201"
	}
	if rt.Path == "/metrics" {
		okType = "text/plain"
	}
	responses := map[string]any{
		okCode: map[string]any{"description": "success", "content": map[string]any{okType: map[string]any{}}},
		"default": map[string]any{"description": "unknown error (500): logged on the server", "content": map[string]any{"application/json": map[string]any{
			"schema": map[string]string{"$ref": errorSchema(rt)},
		}}},
	}
	for code, why := range errorResponses(rt) {
		r := map[string]any{"description": strings.Join(why, "; "), "content": map[string]any{"application/json": map[string]any{
			"schema": map[string]string{"$ref": errorSchema(rt)},
		}}}
		if code == http.StatusTooManyRequests {
			r["headers"] = map[string]any{"Retry-After": map[string]any{"description": "seconds until the address may try again", "schema": map[string]string{"type": "integer"}}}
		}
		responses[strconv.Itoa(code)] = r
	}
	op := map[string]any{
		"summary":     rt.Summary,
		"operationId": operationID(rt, fullPath),
		"responses":   responses,
	}
	var params []map[string]any
	for _, q := range rt.Query {
		params = append(params, map[string]any{"name": q, "in": "query", "schema": map[string]string{"type": "string"}})
	}
	for _, seg := range strings.Split(rt.Path, "/") {
		if strings.HasPrefix(seg, "{") {
			params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true, "schema": map[string]string{"type": "string"}})
		}
	}
	if len(params) > 0 {
		op["parameters"] = params
	}
	if takesBody(rt) {
		op["requestBody"] = map[string]any{"required": false, "content": map[string]any{"application/json": map[string]any{}}}
	}
	if rt.Public {
		op["security"] = []any{}
		if rt.Method == "GET" && rt.Path == "/api/authentication" {
			// The login itself: HTTP Basic, or a TLS client certificate
			// (which OpenAPI 3.0 cannot name) with type=x509.
			op["security"] = []any{map[string][]string{"basic": {}}, map[string][]string{}}
		}
	}
	if rt.Write() {
		op["x-ase-audit-action"] = rt.Action
	}
	return op
}

func takesBody(rt Route) bool {
	return rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "DELETE"
}

// created are the routes whose success is 201 Created.
var created = map[string]bool{
	"POST /api/configuration/aaa/local_database/users":                 true,
	"POST /api/configuration/aaa/local_database/api_keys":              true,
	"POST /api/configuration/aaa/local_database/users/{name}/api_keys": true,
}

// errorResponses returns the error statuses a route can answer, each with
// its reasons. Most follow from the route's attributes, because one
// adapter (ServeHTTP and serve) enforces them for every route: framing,
// lockout, authentication, roles, query parameters, the body's type and
// size, transactions and the store. routeErrors adds what single
// handlers answer. A 500 is the "default" response.
func errorResponses(rt Route) map[int][]string {
	e := map[int][]string{}
	add := func(code int, why string) { e[code] = append(e[code], why) }
	add(http.StatusBadRequest, "ambiguous request framing (Content-Length with Transfer-Encoding, or a body that cannot be delimited), or a body that could not be read")
	switch {
	case rt.Public:
	case rt.Abs:
		add(http.StatusUnauthorized, "no credentials, wrong ones, or an expired session")
	default:
		add(http.StatusForbidden, "x-ase-access-key or x-ase-secret-key header missing, authorization failure (wrong credentials, API key or session), or a credential given twice")
	}
	if rt.Write() && !rt.AnyRole {
		add(http.StatusForbidden, "permission_denied: API keys are read-only and the read role changes nothing")
	} else if rt.Write() {
		add(http.StatusForbidden, "permission_denied: API keys are read-only")
	}
	if rt.AdminOnly {
		add(http.StatusForbidden, "permission_denied: this needs the admin role")
	}
	add(http.StatusForbidden, "validation_error: an unknown or repeated query parameter")
	if takesBody(rt) {
		add(http.StatusForbidden, "content-type header missing (a body that is not application/json), json parsing error, or validation_error naming the field")
		add(http.StatusRequestEntityTooLarge, fmt.Sprintf("the body is over %d bytes", rt.MaxBody))
	}
	if slices.Contains(rt.Query, "api_id") && !(rt.Method == "POST" && rt.Path == "/api") {
		add(http.StatusNotFound, "api_not_found")
	}
	if strings.Contains(rt.Path, "{") {
		add(http.StatusNotFound, "no such "+strings.Join(pathParams(rt.Path), " or "))
	}
	if rt.Write() {
		add(http.StatusConflict, "transaction_in_progress: another user's transaction is open, or the configuration was changed by someone else meanwhile (retry)")
		add(http.StatusRequestEntityTooLarge, "the change is larger than the store takes in one transaction")
		add(http.StatusServiceUnavailable, "cluster mode: this node cannot reach etcd; nothing was changed")
	}
	add(http.StatusTooManyRequests, "too many failed authentications from this address")
	for code, why := range routeErrors[rt.Method+" "+rt.Path] {
		add(code, why)
	}
	return e
}

// routeErrors are the error statuses particular handlers answer, beyond
// those every route of their kind does (errorResponses).
var routeErrors = map[string]map[int]string{
	"GET /cluster":                      {http.StatusNotFound: "no_cluster_mode: ase is not in cluster mode"},
	"GET /metrics":                      {http.StatusNotFound: "metrics are not enabled"},
	"GET /activity":                     {http.StatusNotFound: "metrics are not enabled", http.StatusForbidden: "invalid_value: since is neither an RFC 3339 time nor Unix seconds"},
	"GET /audit":                        {http.StatusNotFound: "the audit log is not kept in a file (enable_audit=false or audit_log_stdout=true), or the before cursor's file was rotated away", http.StatusForbidden: "invalid_value: limit is not a whole number from 1 to 1000, or before is not a cursor of this log"},
	"DELETE /server":                    {http.StatusNotFound: "server_not_found"},
	"POST /firewall/blacklist":          {http.StatusInsufficientStorage: "attack_list_memory is full: nothing was added"},
	"POST /firewall/whitelist":          {http.StatusInsufficientStorage: "attack_list_memory is full: nothing was added"},
	"DELETE /firewall/blacklist":        {http.StatusNotFound: "the entry is not listed"},
	"DELETE /firewall/whitelist":        {http.StatusNotFound: "the entry is not listed"},
	"DELETE /sideband/token":            {http.StatusNotFound: "no such token"},
	"PUT /sideband/secret":              {http.StatusNotFound: "no such shared secret"},
	"DELETE /sideband/secret":           {http.StatusNotFound: "no such shared secret"},
	"GET /api/authentication":           {http.StatusUnauthorized: "wrong user name or password, or a certificate of no user", http.StatusServiceUnavailable: "cluster mode: the session cannot be stored (etcd unreachable)"},
	"DELETE /api/authentication":        {http.StatusServiceUnavailable: "cluster mode: the session cannot be ended (etcd unreachable)"},
	"POST /api/transaction":             {http.StatusConflict: "TransactionInProgress: a transaction is open already", http.StatusLengthRequired: "no body and no Content-Length", http.StatusServiceUnavailable: "cluster mode: etcd unreachable"},
	"PUT /api/transaction":              {http.StatusNotFound: "NoTransaction", http.StatusConflict: "another session's transaction, it ended, or a staged change conflicts", http.StatusServiceUnavailable: "cluster mode: etcd unreachable"},
	"DELETE /api/transaction":           {http.StatusNotFound: "NoTransaction", http.StatusConflict: "another session's transaction", http.StatusServiceUnavailable: "cluster mode: etcd unreachable"},
	"POST /firewall/flowcontrol/server": {http.StatusNotFound: "server_not_found"},
	"GET /abs/attacklist":               {http.StatusForbidden: "invalid_value: earlier_date or later_date is not a time (RFC 3339 or yyyy-mm-ddThh:mm), later_date is before earlier_date, or status is not active, expired or reported"},
	"GET /abs/{api_id}":                 {http.StatusNotFound: "api_not_found", http.StatusForbidden: "validation_error: the api_id is not valid"},
	"PUT /abs/{api_id}/policy":          {http.StatusNotFound: "api_not_found", http.StatusForbidden: "validation_error: the api_id is not valid"},
	"DELETE /abs/{api_id}/policy":       {http.StatusNotFound: "api_not_found", http.StatusForbidden: "validation_error: the api_id is not valid"},
	"POST /abs/{api_id}/retrain":        {http.StatusNotFound: "api_not_found", http.StatusForbidden: "validation_error: the api_id is not valid"},
}

func pathParams(path string) []string {
	var out []string
	for _, seg := range strings.Split(path, "/") {
		if strings.HasPrefix(seg, "{") {
			out = append(out, strings.Trim(seg, "{}"))
		}
	}
	return out
}

func errorSchema(rt Route) string {
	if rt.Abs {
		return "#/components/schemas/APIError"
	}
	return "#/components/schemas/Status"
}

// operationID names an operation after its method and path; the same
// route under /v4/ase gets a "v4_" prefix, so every id is unique and the
// /v5/ase ones stay as they were.
func operationID(rt Route, fullPath string) string {
	name := strings.ToLower(rt.Method)
	for _, seg := range strings.Split(rt.Path, "/") {
		seg = strings.Trim(seg, "{}")
		if seg == "" {
			continue
		}
		name += "_" + strings.ReplaceAll(seg, "-", "_")
	}
	last := Prefixes[len(Prefixes)-1]
	if rt.Root {
		// The vendor ABS's paths: /v5/abs/attacklist is
		// "get_abs_attacklist", /v4/abs/attacklist "v4_get_abs_attacklist".
		last = RootPrefixes[len(RootPrefixes)-1]
	}
	if prefix := strings.TrimSuffix(fullPath, rt.Path); !rt.Abs && prefix != last {
		name = strings.Split(strings.Trim(prefix, "/"), "/")[0] + "_" + name
	}
	return name
}

// OpenAPIPaths lists the (method, path) pairs the document describes, for
// tests.
func OpenAPIPaths(doc map[string]any) []string {
	var out []string
	for p, ops := range doc["paths"].(map[string]map[string]any) {
		for m := range ops {
			out = append(out, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(out)
	return out
}
