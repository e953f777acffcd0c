package wsbridge

import (
	"bytes"
	"compress/flate"
	"io"
	"sync"

	"github.com/gobwas/httphead"
)

// deflateResponse is the permessage-deflate answer (RFC 7692 §7.1): no
// context takeover either way, so no compressor or decompressor state
// outlives a message and both can come from pools. A server may add
// client_no_context_takeover to any offer (§7.1.1.2), and
// server_no_context_takeover too (§7.1.1.1).
const deflateResponse = "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

// deflateResponse15 answers an offer with server_max_window_bits=15: a
// server that accepts the parameter includes it in its response, with a
// value no larger than the offer's (RFC 7692 §7.1.2.1); ours is 15.
const deflateResponse15 = deflateResponse + "; server_max_window_bits=15"

// minCompress is the smallest message sent compressed: below it the
// deflate framing costs more than it saves.
const minCompress = 128

// deflateTail ends each message's compressed bytes for the decompressor:
// the 4 bytes the sender stripped (RFC 7692 §7.2.2), then an empty final
// stored block, so that the decompressor reports io.EOF at the message's
// end instead of waiting for more.
const deflateTail = "\x00\x00\xff\xff\x01\x00\x00\xff\xff"

// acceptDeflate returns the response to the first of the client's offers
// in the Sec-WebSocket-Extensions values that is a permessage-deflate
// offer this server can honour, or "" if none is. An offer that asks for
// a server window below 2^15 (server_max_window_bits) cannot be honoured
// with compress/flate, nor can one with unknown or repeated parameters
// (§5); such offers are declined, and a malformed header is a bad
// handshake.
func acceptDeflate(values []string) (string, error) {
	var opts []httphead.Option
	for _, v := range values {
		var ok bool
		if opts, ok = httphead.ParseOptions([]byte(v), opts); !ok {
			return "", errMalformedExtensions
		}
	}
	for _, o := range opts {
		if string(o.Name) != "permessage-deflate" {
			continue
		}
		ok, seen, window := true, map[string]bool{}, false
		o.Parameters.ForEach(func(k, v []byte) bool {
			key := string(k)
			if seen[key] {
				ok = false
				return false
			}
			seen[key] = true
			switch key {
			case "server_no_context_takeover", "client_no_context_takeover":
				ok = len(v) == 0
			case "client_max_window_bits":
				// The client can limit its window; we need not ask it to.
				ok = len(v) == 0 || windowBits(v) > 0
			case "server_max_window_bits":
				ok = windowBits(v) == 15
				window = true
			default:
				ok = false
			}
			return ok
		})
		if ok && window {
			return deflateResponse15, nil
		}
		if ok {
			return deflateResponse, nil
		}
	}
	return "", nil
}

var errMalformedExtensions = errorString("malformed Sec-WebSocket-Extensions")

type errorString string

func (e errorString) Error() string { return string(e) }

// windowBits parses a window-bits value, 8 to 15, or returns 0.
func windowBits(v []byte) int {
	if len(v) == 2 && v[0] == '"' {
		return 0
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	switch {
	case len(v) == 1 && v[0] >= '8' && v[0] <= '9':
		return int(v[0] - '0')
	case len(v) == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5':
		return 10 + int(v[1]-'0')
	}
	return 0
}

// Pools of compressors and decompressors. A flate.Writer holds ~600 KiB,
// so none is kept per connection; each is taken for one message.
var (
	flateWriters = sync.Pool{New: func() any {
		w, _ := flate.NewWriter(nil, flate.BestSpeed)
		return w
	}}
	flateReaders = sync.Pool{New: func() any {
		return flate.NewReader(nil)
	}}
)

// appendWriter appends what is written to a byte slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// compress appends p, deflated as one message without its sync-flush
// tail (RFC 7692 §7.2.1), to dst.b.
func compress(dst *appendWriter, p []byte) error {
	fw := flateWriters.Get().(*flate.Writer)
	defer func() {
		fw.Reset(nil) // the pool must not keep dst (and its conn) alive
		flateWriters.Put(fw)
	}()
	fw.Reset(dst)
	if _, err := fw.Write(p); err != nil {
		return err
	}
	if err := fw.Flush(); err != nil {
		return err
	}
	// Flush ends with an empty stored block, 00 00 ff ff, which the
	// receiver adds back.
	dst.b = dst.b[:len(dst.b)-4]
	return nil
}

// getInflater returns a pooled decompressor reading from r, which must be
// an io.ByteReader so that flate needs no bufio of its own.
func getInflater(r flate.Reader) io.ReadCloser {
	fr := flateReaders.Get().(io.ReadCloser)
	fr.(flate.Resetter).Reset(r, nil)
	return fr
}

func putInflater(fr io.ReadCloser) {
	fr.(flate.Resetter).Reset(noBytes, nil) // the pool must not keep the conn alive
	flateReaders.Put(fr)
}

// noBytes is an empty flate.Reader for idle decompressors; Reset does not
// read it, so sharing it is safe.
var noBytes = bytes.NewReader(nil)

// deflateTailBytes is deflateTail for readers; never written to.
var deflateTailBytes = []byte(deflateTail)
