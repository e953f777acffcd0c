package sniff

// maxSSHLine is the longest identification string, CR LF included
// (RFC 4253 §4.2).
const maxSSHLine = 255

// SSHBanner is what Parse learned of an SSH client's identification string,
// "SSH-protoversion-softwareversion SP comments CR LF" (RFC 4253 §4.2).
// Verdict is Match once the whole line is there; a line ending in a bare LF
// is accepted, as OpenSSH does.
type SSHBanner struct {
	Verdict         Verdict
	ProtoVersion    []byte // "2.0", or "1.99" from a client that also speaks SSH 1
	SoftwareVersion []byte // e.g. "OpenSSH_9.2p1"
	Comments        []byte // what follows the first SP, if anything
	Len             int    // bytes of the line, its line end included
}

func (s *SSHBanner) parse(b []byte) {
	const prefix = "SSH-"
	n := min(len(b), len(prefix))
	if string(b[:n]) != prefix[:n] {
		return
	}
	s.Verdict = NeedMore
	if n < len(prefix) {
		return
	}
	// Printable US-ASCII up to the line end, within 255 bytes.
	i := len(prefix)
	for ; i < len(b) && i < maxSSHLine; i++ {
		c := b[i]
		if c == '\r' || c == '\n' {
			break
		}
		if c < 0x20 || c > 0x7E {
			s.Verdict = NoMatch
			return
		}
	}
	if i == len(b) {
		return // NeedMore
	}
	line := b[len(prefix):i]
	switch {
	case b[i] == '\n':
		s.Len = i + 1
	case b[i] != '\r':
		// No line end within the limit.
	case i+1 == len(b):
		return // CR, LF still to come
	case b[i+1] == '\n':
		s.Len = i + 2
	}
	if s.Len == 0 || s.Len > maxSSHLine {
		s.Verdict = NoMatch
		return
	}
	if sp := indexByte(line, ' '); sp >= 0 {
		s.Comments = line[sp+1:]
		line = line[:sp]
	}
	dash := indexByte(line, '-')
	if dash <= 0 || dash == len(line)-1 {
		s.Verdict = NoMatch
		return
	}
	s.ProtoVersion, s.SoftwareVersion = line[:dash], line[dash+1:]
	s.Verdict = Match
}

func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}
