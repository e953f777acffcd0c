package mux

import (
	"bytes"
	"strings"

	"github.com/portmux/portmux/sniff"
)

// Input is what a Matcher sees: the one parse of the bytes received so
// far, shared by every route. It is valid only during the call.
type Input struct {
	res *sniff.Result

	// Bytes are the bytes received after any PROXY header.
	Bytes []byte
	// TimedOut reports that SniffTimeout passed before a decision.
	TimedOut bool
	// Final reports that no more bytes will be read (timeout, end of
	// stream, or MaxSniffBytes reached): the mux then takes NeedMore as
	// NoMatch.
	Final bool
}

// NewInput parses b, the bytes a connection sent so far, into res and
// returns the Input that a Matcher would see for them: what the mux does
// before each round of matching, for adapters (mux/cmuxcompat) and
// tests. limit is MaxSniffBytes (<= 0: the default); final says that no
// more bytes will come. res must outlive the Input; reuse it, it is large.
func NewInput(res *sniff.Result, b []byte, limit int, final bool) Input {
	res.Parse(b, limit)
	return Input{res: res, Bytes: b[min(res.Offset, len(b)):], Final: final}
}

// Proxy is the PROXY protocol header the bytes start with, if any.
func (in *Input) Proxy() *sniff.ProxyHeader { return &in.res.Proxy }

// HTTP1 is the parse of an HTTP/1.x request head.
func (in *Input) HTTP1() *sniff.HTTP1Head { return &in.res.HTTP1 }

// HTTP2 is the verdict on the HTTP/2 prior-knowledge preface.
func (in *Input) HTTP2() sniff.Verdict { return in.res.HTTP2 }

// TLS is the parse of a TLS ClientHello.
func (in *Input) TLS() *sniff.ClientHello { return &in.res.TLS }

// SSH is the parse of an SSH identification string.
func (in *Input) SSH() *sniff.SSHBanner { return &in.res.SSH }

// Protocol is what the bytes are, as far as the parse can tell (see
// sniff.Result.Protocol).
func (in *Input) Protocol() (sniff.Protocol, sniff.Verdict) { return in.res.Protocol() }

// A Matcher decides whether a route takes a connection: sniff.Match,
// sniff.NoMatch, or sniff.NeedMore to see more bytes first. Routes are
// tried in order and the first that matches wins, once every route before
// it has said no. Parsers say no at the first byte that rules their
// protocol out, so a route waiting for more bytes of its own protocol never
// holds back a connection of another. A Matcher must not block, allocate
// or keep Input.
type Matcher func(in *Input) sniff.Verdict

// verdict folds a parser verdict into a routing one: Malformed and TooLarge
// are no match for a route (the mux answers them itself).
func verdict(v sniff.Verdict) sniff.Verdict {
	if v == sniff.Match || v == sniff.NeedMore {
		return v
	}
	return sniff.NoMatch
}

// Any matches every connection at once, before reading anything: as the
// last route, it is the fallback; as the only one, a plain pass-through.
func Any() Matcher {
	return func(*Input) sniff.Verdict { return sniff.Match }
}

// Silent matches a connection that sent nothing within SniffTimeout: a
// client of a server-speaks-first protocol (SMTP, or an SSH client that
// waits for the server's banner) can be recognised only by its silence.
func Silent() Matcher {
	return func(in *Input) sniff.Verdict {
		switch {
		case len(in.Bytes) > 0:
			return sniff.NoMatch
		case in.TimedOut:
			return sniff.Match
		}
		return sniff.NeedMore
	}
}

// HTTP1 matches a well-formed HTTP/1.x request head, any method, upgrade
// requests included (put upgrade routes before it to take those).
func HTTP1() Matcher {
	return func(in *Input) sniff.Verdict { return verdict(in.HTTP1().Verdict) }
}

// HTTP2 matches the HTTP/2 prior-knowledge preface (RFC 9113 §3.4).
func HTTP2() Matcher {
	return func(in *Input) sniff.Verdict { return verdict(in.HTTP2()) }
}

// Upgrade matches a valid upgrade request (RFC 9110 §7.8: HTTP/1.1, the
// "upgrade" Connection option) to any of tokens, compared without regard
// to case. Tokens are lower case.
func Upgrade(tokens ...string) Matcher {
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP1().Verdict); v != sniff.Match {
			return v
		}
		for _, t := range tokens {
			if in.HTTP1().UpgradeTo(t) {
				return sniff.Match
			}
		}
		return sniff.NoMatch
	}
}

// WebSocket matches a valid WebSocket opening handshake (RFC 6455
// §4.2.1). A flawed one is no match: on an upgrade-only port the mux
// answers it with 400, or 426 for a wrong Sec-WebSocket-Version.
func WebSocket() Matcher {
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP1().Verdict); v != sniff.Match {
			return v
		}
		if in.HTTP1().WebSocket() != nil {
			return sniff.NoMatch
		}
		return sniff.Match
	}
}

// PathPrefix matches an HTTP/1.x request whose target starts with prefix,
// to be combined with And, e.g. And(WebSocket(), PathPrefix("/vnc")).
// It routes a connection by its first request only (later requests on a
// keep-alive connection go the same way) and compares bytes as sent, so
// "/public" also matches "/public/../admin": it is no access control.
func PathPrefix(prefix string) Matcher {
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.HTTP1().Verdict); v != sniff.Match {
			return v
		}
		if t := in.HTTP1().Target; len(t) >= len(prefix) && string(t[:len(prefix)]) == prefix {
			return sniff.Match
		}
		return sniff.NoMatch
	}
}

// TLS matches a TLS ClientHello. Combine with ServerName and ALPN.
func TLS() Matcher {
	return func(in *Input) sniff.Verdict { return verdict(in.TLS().Verdict) }
}

// ServerName matches a TLS ClientHello whose SNI is one of names, compared
// without regard to case. A name "*.example.com" matches exactly one label
// in place of the star ("a.example.com", not "example.com" nor
// "a.b.example.com").
func ServerName(names ...string) Matcher {
	lower := make([]string, len(names))
	for i, n := range names {
		lower[i] = strings.ToLower(n)
	}
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.TLS().Verdict); v != sniff.Match {
			return v
		}
		for _, n := range lower {
			if matchServerName(in.TLS().ServerName, n) {
				return sniff.Match
			}
		}
		return sniff.NoMatch
	}
}

func matchServerName(sni []byte, pattern string) bool {
	if suffix, ok := strings.CutPrefix(pattern, "*"); ok {
		// "*.example.com": one non-empty label, then the suffix.
		if len(sni) <= len(suffix) || !sniff.EqualFold(sni[len(sni)-len(suffix):], suffix) {
			return false
		}
		return bytes.IndexByte(sni[:len(sni)-len(suffix)], '.') < 0
	}
	return sniff.EqualFold(sni, pattern)
}

// ALPN matches a TLS ClientHello that offers any of protos (RFC 7301).
func ALPN(protos ...string) Matcher {
	return func(in *Input) sniff.Verdict {
		if v := verdict(in.TLS().Verdict); v != sniff.Match {
			return v
		}
		for _, p := range protos {
			if in.TLS().OffersALPN(p) {
				return sniff.Match
			}
		}
		return sniff.NoMatch
	}
}

// SSH matches an SSH client's identification string (RFC 4253 §4.2).
func SSH() Matcher {
	return func(in *Input) sniff.Verdict { return verdict(in.SSH().Verdict) }
}

// And matches when every one of ms matches; it says no as soon as one does.
func And(ms ...Matcher) Matcher {
	return func(in *Input) sniff.Verdict {
		v := sniff.Match
		for _, m := range ms {
			switch m(in) {
			case sniff.NoMatch:
				return sniff.NoMatch
			case sniff.NeedMore:
				v = sniff.NeedMore
			}
		}
		return v
	}
}

// Or matches when any of ms matches, and says no when all of them do.
func Or(ms ...Matcher) Matcher {
	return func(in *Input) sniff.Verdict {
		v := sniff.NoMatch
		for _, m := range ms {
			switch m(in) {
			case sniff.Match:
				return sniff.Match
			case sniff.NeedMore:
				v = sniff.NeedMore
			}
		}
		return v
	}
}
