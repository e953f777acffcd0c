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

// EqualFold reports whether b and s are equal under ASCII case folding:
// the letters A-Z and a-z match their other case, every other byte only
// itself. Unlike bytes.EqualFold it applies no Unicode folding, so no
// multi-byte sequence matches a letter (the Kelvin sign is not "k"): what
// a route compares a host name or token with is what a backend will read.
// It does not allocate.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lower(b[i]) != lower(s[i]) {
			return false
		}
	}
	return true
}

// foldName is a lower-case name of 8 bytes or more, as words for
// equalFoldWords: word k holds bytes 8k to 8k+7, the last word the final 8
// bytes (overlapping the one before it when the length is not a multiple
// of 8).
type foldName struct {
	n     int
	words [4]uint64
}

func newFoldName(s string) foldName {
	if len(s) < 8 || len(s) > 32 {
		panic("sniff: foldName needs 8 to 32 bytes: " + s)
	}
	f := foldName{n: len(s)}
	for k := 0; k < (len(s)+7)/8; k++ {
		off := min(8*k, len(s)-8)
		f.words[k] = binary.LittleEndian.Uint64([]byte(s[off : off+8]))
	}
	return f
}

// equalFoldWords reports whether b equals the name f stands for, ignoring
// ASCII case in b. It sets bit 0x20 in every byte of b, which folds
// upper-case letters and, for the bytes of a header name or value (no
// control bytes), maps nothing else onto a letter, digit, '-' or '/':
// those are the only bytes the names compared here hold.
func equalFoldWords(b []byte, f *foldName) bool {
	if len(b) != f.n {
		return false
	}
	for k := 0; k < (f.n+7)/8; k++ {
		off := min(8*k, f.n-8)
		if binary.LittleEndian.Uint64(b[off:])|lo8*0x20 != f.words[k] {
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

// IsToken reports whether b is a non-empty token of RFC 9110 §5.6.2, as
// header field names and many values (Upgrade protocols, WebSocket
// subprotocols) must be.
func IsToken(b []byte) bool {
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

// scanToken returns the index of the first byte at or after i that is not a
// tchar, or len(b). Header names are short (13 bytes on average in a
// browser's handshake): a table lookup per byte, four to an iteration,
// costs fewer instructions here than word-at-a-time range checks did.
func scanToken(b []byte, i int) int {
	for ; i+4 <= len(b); i += 4 {
		if !isTchar[b[i]] {
			return i
		}
		if !isTchar[b[i+1]] {
			return i + 1
		}
		if !isTchar[b[i+2]] {
			return i + 2
		}
		if !isTchar[b[i+3]] {
			return i + 3
		}
	}
	for i < len(b) && isTchar[b[i]] {
		i++
	}
	return i
}
