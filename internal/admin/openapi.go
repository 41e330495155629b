package admin

import (
	"sort"
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
			paths[p][strings.ToLower(rt.Method)] = operation(rt)
		}
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": map[string]any{
			"title":       "ASE management API",
			"version":     version,
			"description": "Every /v4/ase path also exists under /v5/ase with identical behaviour. Authenticate with the x-ase-access-key and x-ase-secret-key headers, a session_id cookie (or header) from GET /api/authentication, or Authorization: apikey <token> (read-only).",
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

func operation(rt Route) map[string]any {
	op := map[string]any{
		"summary":     rt.Summary,
		"operationId": operationID(rt),
		"responses": map[string]any{
			"200": map[string]any{"description": "success", "content": map[string]any{"application/json": map[string]any{}}},
			"default": map[string]any{"description": "an error", "content": map[string]any{"application/json": map[string]any{
				"schema": map[string]string{"$ref": errorSchema(rt)},
			}}},
		},
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
	if rt.Method == "POST" || rt.Method == "PUT" || rt.Method == "DELETE" {
		op["requestBody"] = map[string]any{"required": false, "content": map[string]any{"application/json": map[string]any{}}}
	}
	if rt.Public {
		op["security"] = []any{}
	}
	if rt.Write() {
		op["x-ase-audit-action"] = rt.Action
	}
	return op
}

func errorSchema(rt Route) string {
	if rt.Abs {
		return "#/components/schemas/APIError"
	}
	return "#/components/schemas/Status"
}

func operationID(rt Route) string {
	name := strings.ToLower(rt.Method)
	for _, seg := range strings.Split(rt.Path, "/") {
		seg = strings.Trim(seg, "{}")
		if seg == "" {
			continue
		}
		name += "_" + strings.ReplaceAll(seg, "-", "_")
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
