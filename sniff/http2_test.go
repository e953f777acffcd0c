package sniff

import "testing"

func TestNextHTTP2Frame(t *testing.T) {
	// SETTINGS (one setting), then a padded HEADERS with priority.
	b := []byte{0, 0, 6, FrameSettings, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100,
		0, 0, 10, FrameHeaders, FlagEndHeaders | FlagPadded | FlagPriority, 0x80, 0, 0, 1,
		2, 0, 0, 0, 0, 16, 0x82, 0x86, 0, 0}
	for i := range len(b) {
		if _, _, ok := NextHTTP2Frame(b[:i]); ok && i < 15 {
			t.Fatalf("a frame from %d bytes", i)
		}
	}
	f, rest, ok := NextHTTP2Frame(b)
	if !ok || f.Type != FrameSettings || f.Stream != 0 || len(f.Payload) != 6 || len(rest) != 19 {
		t.Fatalf("first frame %+v ok=%v rest %d", f, ok, len(rest))
	}
	f, rest, ok = NextHTTP2Frame(rest)
	if !ok || f.Type != FrameHeaders || f.Stream != 1 || len(rest) != 0 {
		t.Fatalf("second frame %+v ok=%v rest %d (the reserved bit must be masked)", f, ok, len(rest))
	}
	if block, ok := f.HeaderBlock(); !ok || string(block) != "\x82\x86" {
		t.Errorf("header block %q ok=%v; want 82 86", block, ok)
	}
	for _, bad := range []HTTP2Frame{
		{Type: FrameHeaders, Flags: FlagPadded},
		{Type: FrameHeaders, Flags: FlagPadded, Payload: []byte{5, 1, 2}},
		{Type: FrameHeaders, Flags: FlagPriority, Payload: []byte{1, 2, 3, 4}},
	} {
		if _, ok := bad.HeaderBlock(); ok {
			t.Errorf("HeaderBlock of %+v: ok", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { NextHTTP2Frame(b) }); n != 0 {
		t.Errorf("NextHTTP2Frame allocates %v times", n)
	}
}
