package sniff

// Verdict is one parser's answer about the bytes seen so far.
type Verdict uint8

const (
	// NoMatch: the bytes cannot be the start of this protocol. It is the
	// zero value, so an empty Result matches nothing.
	NoMatch Verdict = iota
	// NeedMore: the bytes so far are a valid prefix; more are needed to decide.
	NeedMore
	// Match: the protocol is recognised and its head was parsed completely.
	Match
	// Malformed: the bytes are recognisably this protocol but break its
	// grammar; the parser's Err field says how. Only HTTP1 uses it, and the
	// mux answers it with 400 (or 505 for ErrVersion).
	Malformed
	// TooLarge: a valid prefix whose head does not end within the byte limit.
	TooLarge
)

var verdictNames = [...]string{"no match", "need more", "match", "malformed", "too large"}

func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return "invalid verdict"
}

// Protocol names what a connection speaks, as far as Parse can tell.
type Protocol uint8

const (
	Unknown Protocol = iota // nothing recognised (yet)
	HTTP1                   // an HTTP/1.x request head
	HTTP2                   // the HTTP/2 connection preface (prior knowledge)
	TLS                     // a TLS ClientHello
	SSH                     // an SSH identification string
)

var protocolNames = [...]string{"unknown", "http1", "http2", "tls", "ssh"}

func (p Protocol) String() string {
	if int(p) < len(protocolNames) {
		return protocolNames[p]
	}
	return "invalid protocol"
}

// DefaultLimit is the head byte limit Parse uses when it is given a limit of
// zero or less: 16 KiB, as caddy-l4's prefetch cap and HAProxy's buffer.
const DefaultLimit = 16 << 10

// Result holds everything Parse learned from a connection's first bytes.
// Byte slices in it point into the buffer given to Parse (or, for TLS values
// split across records, into the Result itself): they are valid while that
// buffer is unchanged and must be copied to be kept.
//
// A Result is large (about 1.5 KiB) and meant to be reused: keep one per
// connection or in a pool, and call Parse on it after every read.
type Result struct {
	// Proxy is the PROXY protocol header, if the bytes start with one.
	// When it matched, every other parser looked at the bytes after it.
	Proxy ProxyHeader

	// Offset is where the payload starts: Proxy.Len when a PROXY header
	// matched, else 0. Lengths in HTTP1, TLS and SSH count from here.
	Offset int

	HTTP1 HTTP1Head
	// HTTP2 is the verdict on the HTTP/2 connection preface (RFC 9113 §3.4).
	HTTP2 Verdict
	TLS   ClientHello
	SSH   SSHBanner

	// scratch holds TLS values that straddle a record boundary, the only
	// case in which they cannot point into the caller's buffer.
	scratch  [512]byte
	nScratch int
}

// Parse classifies b, the bytes a connection has sent so far, into r. It
// overwrites all of r. limit caps how long a head may be (an HTTP/1 head, a
// TLS ClientHello with its record headers, a PROXY header); past it a parser
// answers TooLarge. If limit <= 0, DefaultLimit is used.
//
// Parse is pure: it does no I/O, keeps no state outside r and does not
// allocate. Parsing b in one piece gives the same answer as parsing every
// prefix of it in turn and keeping the last: a verdict other than NeedMore
// never changes as more bytes arrive.
func (r *Result) Parse(b []byte, limit int) {
	if limit <= 0 {
		limit = DefaultLimit
	}
	// Reset every field that is read, leaving the token arrays and the
	// scratch space, which are read only up to their counts.
	// One field at a time: a tuple assignment of the two structs builds
	// them on the stack first, doubling Parse's frame.
	r.Proxy = ProxyHeader{}
	r.SSH = SSHBanner{}
	r.Offset, r.HTTP2 = 0, NoMatch
	r.HTTP1.reset()
	r.TLS.reset()
	r.nScratch = 0
	r.Proxy.parse(b[:min(len(b), limit)], limit)
	if r.Proxy.Verdict == NeedMore && len(b) >= limit {
		r.Proxy.Verdict = TooLarge
	}
	switch r.Proxy.Verdict {
	case NeedMore, TooLarge, Malformed:
		// Nothing after a PROXY header can be judged before it ends. A
		// broken or oversized PROXY header leaves the others at NoMatch.
		if r.Proxy.Verdict == NeedMore {
			r.HTTP1.Verdict, r.HTTP2, r.TLS.Verdict, r.SSH.Verdict = NeedMore, NeedMore, NeedMore, NeedMore
		}
		return
	case Match:
		r.Offset = r.Proxy.Len
	}
	// Every parser sees the payload cut at the limit, so that no verdict
	// depends on bytes past it.
	limit -= r.Offset
	p := b[r.Offset:]
	p = p[:min(len(p), limit)]
	if len(p) == 0 {
		r.HTTP1.Verdict, r.HTTP2, r.TLS.Verdict, r.SSH.Verdict = NeedMore, NeedMore, NeedMore, NeedMore
		return
	}
	// The first byte rules out all but one or two protocols; parsers that
	// cannot match are not run.
	switch c := p[0]; {
	case c == 22:
		r.TLS.parse(p, limit, r)
		return
	case c == 'P':
		r.HTTP2 = parsePreface(p)
		if r.HTTP2 == NeedMore && len(p) == limit {
			r.HTTP2 = TooLarge
		}
		if r.HTTP2 == Match {
			return
		}
	case c == 'S':
		r.SSH.parse(p)
		if r.SSH.Verdict == NeedMore && len(p) == limit {
			r.SSH.Verdict = TooLarge
		}
		if r.SSH.Verdict == Match {
			return
		}
	case c != '\r' && !isTchar[c]:
		return
	}
	r.HTTP1.parse(p, limit)
}

// Protocol reports which protocol the bytes are and how sure Parse is: Match
// with the protocol once one parser matched, NeedMore while any parser still
// needs bytes, and NoMatch with Unknown when every parser said no. An HTTP/1
// head that is Malformed or TooLarge is reported as HTTP1 with that verdict.
func (r *Result) Protocol() (Protocol, Verdict) {
	switch {
	case r.HTTP2 == Match:
		return HTTP2, Match
	case r.HTTP1.Verdict == Match, r.HTTP1.Verdict == Malformed, r.HTTP1.Verdict == TooLarge:
		return HTTP1, r.HTTP1.Verdict
	case r.TLS.Verdict == Match, r.TLS.Verdict == TooLarge:
		return TLS, r.TLS.Verdict
	case r.SSH.Verdict == Match:
		return SSH, Match
	case r.HTTP2 == NeedMore, r.HTTP1.Verdict == NeedMore, r.TLS.Verdict == NeedMore, r.SSH.Verdict == NeedMore:
		return Unknown, NeedMore
	}
	return Unknown, NoMatch
}
