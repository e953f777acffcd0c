// Package cmuxcompat lets cmux users keep cmux and use portmux's matchers:
// HTTP/1 with every method (PATCH and extension methods included), upgrade
// and WebSocket detection by the rules of RFC 9110 §7.8 and RFC 6455, and
// TLS routing by SNI and ALPN, which cmux cannot see.
//
//	m := cmux.New(ln)
//	ws := m.Match(cmuxcompat.Matcher(mux.WebSocket()))
//	h1 := m.Match(cmuxcompat.Matcher(mux.HTTP1()))
//
// The adapter trusts no PROXY protocol header: a connection that starts
// with one matches nothing.
//
// cmux still reads each matcher's bytes from the start and blocks while a
// matcher waits; for one pass over the bytes, bounded waits and the rest,
// move to package mux.
package cmuxcompat

import (
	"io"
	"sync"

	"github.com/portmux/portmux/mux"
	"github.com/portmux/portmux/sniff"
	"github.com/soheilhy/cmux"
)

// MaxBytes bounds what one matcher reads before it gives up.
const MaxBytes = sniff.DefaultLimit

type scratch struct {
	buf [MaxBytes]byte
	res sniff.Result
}

var pool = sync.Pool{New: func() any { return new(scratch) }}

// Matcher adapts m to cmux: it reads from cmux's replaying reader until m
// decides, the reader fails (then NeedMore counts as no), or MaxBytes
// have been read.
func Matcher(m mux.Matcher) cmux.Matcher {
	return func(r io.Reader) bool {
		s := pool.Get().(*scratch)
		defer pool.Put(s)
		n := 0
		for {
			in := mux.NewInput(&s.res, s.buf[:n], MaxBytes, n == MaxBytes)
			if v := in.Proxy().Verdict; v != sniff.NoMatch && v != sniff.NeedMore {
				// cmux would pass the PROXY header on to the server:
				// this adapter trusts none.
				return false
			}
			switch v := m(&in); {
			case v == sniff.Match:
				return true
			case v == sniff.NoMatch, in.Final:
				return false
			}
			k, err := r.Read(s.buf[n:])
			n += k
			if err != nil {
				in := mux.NewInput(&s.res, s.buf[:n], MaxBytes, true)
				if in.Proxy().Verdict != sniff.NoMatch {
					return false
				}
				return m(&in) == sniff.Match
			}
		}
	}
}
