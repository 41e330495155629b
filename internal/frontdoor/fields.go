package frontdoor

// class is what a header field name means to the front door.
type class uint8

const (
	fOther class = iota
	fHost
	fContentType
	fContentLength
	fTransferEncoding
	fConnection
	fCookie
	fAuthorization
	fXRealIP
	fXForwardedFor
	fXForwardedProto
	fXForwardedHost
	fExpect
	fHopByHopField // the other hop-by-hop fields (RFC 9110 section 7.6.1)
	fUserAgent
	fXRequestID
)

// is compares a field name (a token) with a lower-case constant of
// letters and "-": for tokens, b|0x20 equals such a byte only when b is
// the same letter in either case or the same "-".
func is(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if b[i]|0x20 != s[i] {
			return false
		}
	}
	return true
}

// classify names a field in one look at its length and at most two
// comparisons: every field of every request passes here.
func classify(name []byte) class {
	switch len(name) {
	case 2:
		if is(name, "te") {
			return fHopByHopField
		}
	case 4:
		if is(name, "host") {
			return fHost
		}
	case 6:
		switch {
		case is(name, "cookie"):
			return fCookie
		case is(name, "expect"):
			return fExpect
		}
	case 7:
		if is(name, "trailer") || is(name, "upgrade") {
			return fHopByHopField
		}
	case 9:
		if is(name, "x-real-ip") {
			return fXRealIP
		}
	case 10:
		switch {
		case is(name, "connection"):
			return fConnection
		case is(name, "keep-alive"):
			return fHopByHopField
		case is(name, "user-agent"):
			return fUserAgent
		}
	case 12:
		switch {
		case is(name, "content-type"):
			return fContentType
		case is(name, "x-request-id"):
			return fXRequestID
		}
	case 13:
		if is(name, "authorization") {
			return fAuthorization
		}
	case 14:
		if is(name, "content-length") {
			return fContentLength
		}
	case 15:
		if is(name, "x-forwarded-for") {
			return fXForwardedFor
		}
	case 16:
		switch {
		case is(name, "proxy-connection"):
			return fHopByHopField
		case is(name, "x-forwarded-host"):
			return fXForwardedHost
		}
	case 17:
		switch {
		case is(name, "transfer-encoding"):
			return fTransferEncoding
		case is(name, "x-forwarded-proto"):
			return fXForwardedProto
		}
	case 18:
		if is(name, "proxy-authenticate") {
			return fHopByHopField
		}
	case 19:
		if is(name, "proxy-authorization") {
			return fHopByHopField
		}
	}
	return fOther
}
