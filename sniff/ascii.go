package sniff

import (
	"encoding/binary"
	"math/bits"
)

// Byte classes from RFC 9110 §5.6.2 (tchar) and §5.5 (field values).
var isTchar = [256]bool{
	'!': true, '#': true, '$': true, '%': true, '&': true, '\'': true, '*': true,
	'+': true, '-': true, '.': true, '^': true, '_': true, '`': true, '|': true, '~': true,
	'0': true, '1': true, '2': true, '3': true, '4': true, '5': true, '6': true, '7': true, '8': true, '9': true,
	'a': true, 'b': true, 'c': true, 'd': true, 'e': true, 'f': true, 'g': true, 'h': true, 'i': true,
	'j': true, 'k': true, 'l': true, 'm': true, 'n': true, 'o': true, 'p': true, 'q': true, 'r': true,
	's': true, 't': true, 'u': true, 'v': true, 'w': true, 'x': true, 'y': true, 'z': true,
	'A': true, 'B': true, 'C': true, 'D': true, 'E': true, 'F': true, 'G': true, 'H': true, 'I': true,
	'J': true, 'K': true, 'L': true, 'M': true, 'N': true, 'O': true, 'P': true, 'Q': true, 'R': true,
	'S': true, 'T': true, 'U': true, 'V': true, 'W': true, 'X': true, 'Y': true, 'Z': true,
}

// lower folds an ASCII letter to lower case and leaves every other byte alone.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case in b. It does not allocate.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		if lower(b[i]) != s[i] {
			return false
		}
	}
	return true
}

// trimOWS drops optional whitespace (SP and HTAB, RFC 9110 §5.6.3) at both ends.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// isToken reports whether b is a non-empty RFC 9110 token.
func isToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar[c] {
			return false
		}
	}
	return true
}

// nextListElem splits the first element off a comma-separated list
// (RFC 9110 §5.6.1), trimming OWS. Empty elements are returned as empty
// slices, which callers skip, as the RFC requires recipients to accept them.
func nextListElem(b []byte) (elem, rest []byte) {
	for i, c := range b {
		if c == ',' {
			return trimOWS(b[:i]), b[i+1:]
		}
	}
	return trimOWS(b), nil
}

// Constants for word-at-a-time scans. In each, a byte's high bit in the
// result flags it; borrows and carries never cross into a lower byte, so
// the lowest flagged byte is exact even where higher ones are not.
const (
	lo8 = 0x0101010101010101
	hi8 = 0x8080808080808080
)

// firstFlagged returns the index of the lowest byte whose high bit is set in m.
func firstFlagged(m uint64) int { return bits.TrailingZeros64(m) >> 3 }

// scanLine returns the index of the first byte in b at or after i that is a
// control character (below 0x20, or DEL), or len(b) if there is none. Field
// values are checked eight bytes at a time: a word whose bytes are all
// printable ASCII or obs-text is skipped with a few arithmetic operations.
func scanLine(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		// A byte below 0x20 or equal to 0x7F (high bit clear in both cases)
		// sets its high bit in one of these two terms.
		less := (x - lo8*0x20) & ^x & hi8
		y := x ^ (lo8 * 0x7F)
		del := (y - lo8) & ^y & hi8
		if m := less | del; m != 0 {
			return i + firstFlagged(m)
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c < 0x20 || c == 0x7F {
			return i
		}
	}
	return len(b)
}

// inRange flags the bytes of x (each below 0x80) that lie in [lo, hi].
func inRange(x uint64, lo, hi byte) uint64 {
	return (x + lo8*uint64(0x80-lo)) & (lo8*(0x80+uint64(hi)) - x) & hi8
}

// scanToken returns the index of the first byte at or after i that is not a
// tchar, or len(b). Header names are letters, digits and '-' almost always:
// words of those are skipped eight bytes at a time, and the table decides
// the rest.
func scanToken(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		high := x & hi8
		x &^= hi8
		good := inRange(x|lo8*0x20, 'a', 'z') | inRange(x, '0', '9') | inRange(x, '-', '-')
		if m := ^good&hi8 | high; m != 0 {
			i += firstFlagged(m)
			break
		}
	}
	for i < len(b) && isTchar[b[i]] {
		i++
	}
	return i
}
