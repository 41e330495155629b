package engine

import (
	"sort"
	"strings"

	"github.com/ase-project/ase/internal/apidef"
	"github.com/ase-project/ase/internal/catalog"
)

// RouteError says why a request belongs to no API.
type RouteError uint8

// The routing failures, answered 503 with the vendor's texts.
const (
	RouteOK         RouteError = iota
	UnknownHostname            // no API serves this Host
	UnknownAPI                 // APIs serve this Host, none this path
)

// Message is the vendor's reply body for a routing failure.
func (e RouteError) Message() string {
	switch e {
	case UnknownHostname:
		return "Error: Unknown Hostname"
	case UnknownAPI:
		return "Error: Unknown API"
	}
	return ""
}

// Router finds the API a request belongs to: the one whose hostname
// matches the Host (exactly, else "*") and whose url is the longest prefix
// of the path on a segment boundary. It is immutable; a new one is built
// for every catalog change.
type Router struct {
	byHost map[string][]*apidef.API // lower-case host or host:port -> longest url first
	any    []*apidef.API            // hostname "*"
}

// NewRouter builds the router of a catalog snapshot.
func NewRouter(snap *catalog.Snapshot) *Router {
	r := &Router{byHost: map[string][]*apidef.API{}}
	for _, a := range snap.APIs {
		if a.Hostname == "*" {
			r.any = append(r.any, a)
		} else {
			r.byHost[a.Hostname] = append(r.byHost[a.Hostname], a)
		}
	}
	byLen := func(s []*apidef.API) {
		sort.Slice(s, func(i, j int) bool {
			if len(s[i].URL) != len(s[j].URL) {
				return len(s[i].URL) > len(s[j].URL)
			}
			return s[i].ID < s[j].ID
		})
	}
	byLen(r.any)
	for _, s := range r.byHost {
		byLen(s)
	}
	return r
}

// Route returns the API of a request to host (the Host header, with or
// without port) and path.
func (r *Router) Route(host, path string) (*apidef.API, RouteError) {
	host = lowerASCII(host)
	candidates, known := r.byHost[host]
	if !known {
		if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.HasSuffix(host, "]") {
			candidates, known = r.byHost[host[:i]]
		} else if strings.HasPrefix(host, "[") {
			if i := strings.LastIndex(host, "]:"); i >= 0 {
				candidates, known = r.byHost[host[:i+1]]
			}
		}
	}
	if a := longest(candidates, path); a != nil {
		return a, RouteOK
	}
	if a := longest(r.any, path); a != nil {
		return a, RouteOK
	}
	if !known && len(r.any) == 0 {
		return nil, UnknownHostname
	}
	return nil, UnknownAPI
}

func longest(apis []*apidef.API, path string) *apidef.API {
	for _, a := range apis {
		if underBase(path, a.URL) {
			return a
		}
	}
	return nil
}

// underBase reports whether path is base or below it on a segment
// boundary: /shop matches /shop and /shop/cart, not /shopping.
func underBase(path, base string) bool {
	if base == "/" {
		return true
	}
	return strings.HasPrefix(path, base) && (len(path) == len(base) || path[len(base)] == '/')
}

// lowerASCII lower-cases s, allocating only if it has upper-case letters.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}
