package wsbridge

import "unicode/utf8"

// utf8Stream validates UTF-8 that arrives in pieces (frames, fragments,
// reads): a sequence split between two pieces is held until it completes.
// The zero value is ready for a new message.
type utf8Stream struct {
	pend [utf8.UTFMax]byte
	n    int // bytes held in pend
}

// seqLen returns the length of the sequence that lead byte c starts, or 0
// if c cannot start one.
func seqLen(c byte) int {
	switch {
	case c < 0x80:
		return 1
	case c >= 0xc2 && c <= 0xdf:
		return 2
	case c >= 0xe0 && c <= 0xef:
		return 3
	case c >= 0xf0 && c <= 0xf4:
		return 4
	}
	return 0
}

// write checks p, the next piece. It returns false as soon as the bytes
// seen so far cannot be the start of valid UTF-8.
func (s *utf8Stream) write(p []byte) bool {
	if s.n > 0 {
		need := seqLen(s.pend[0])
		for s.n < need && len(p) > 0 {
			s.pend[s.n] = p[0]
			s.n++
			p = p[1:]
		}
		if s.n < need {
			return validPrefix(s.pend[:s.n])
		}
		if !utf8.FullRune(s.pend[:need]) {
			return false
		}
		if r, size := utf8.DecodeRune(s.pend[:need]); r == utf8.RuneError && size <= 1 {
			return false
		}
		s.n = 0
	}
	// Hold back an incomplete sequence at the end.
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-3; i-- {
		if c := p[i]; c&0xc0 != 0x80 {
			if l := seqLen(c); l > 1 && len(p)-i < l {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	s.n = copy(s.pend[:], p[cut:])
	return s.n == 0 || validPrefix(s.pend[:s.n])
}

// validPrefix reports whether b, an incomplete sequence, can still
// complete to a valid one (RFC 3629 §4: no overlongs, surrogates or
// values above U+10FFFF), so that bad input fails fast.
func validPrefix(b []byte) bool {
	if seqLen(b[0]) <= len(b) {
		return false
	}
	for _, c := range b[1:] {
		if c&0xc0 != 0x80 {
			return false
		}
	}
	if len(b) >= 2 {
		switch b[0] {
		case 0xe0:
			return b[1] >= 0xa0
		case 0xed:
			return b[1] < 0xa0
		case 0xf0:
			return b[1] >= 0x90
		case 0xf4:
			return b[1] < 0x90
		}
	}
	return true
}

// done reports whether the message ended on a complete sequence, and
// resets s for the next message.
func (s *utf8Stream) done() bool {
	ok := s.n == 0
	s.n = 0
	return ok
}
