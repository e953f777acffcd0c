package sniff

// Preface is the HTTP/2 client connection preface (RFC 9113 §3.4) that a
// client with prior knowledge sends first.
const Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// parsePreface says NoMatch at the first byte that differs from the preface,
// NeedMore while b is a proper prefix of it, and Match once all 24 bytes are
// there.
func parsePreface(b []byte) Verdict {
	n := min(len(b), len(Preface))
	if string(b[:n]) != Preface[:n] {
		return NoMatch
	}
	if n < len(Preface) {
		return NeedMore
	}
	return Match
}
