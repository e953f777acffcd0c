package h2frame

import "testing"

func TestNext(t *testing.T) {
	// SETTINGS (one setting), then a padded HEADERS with priority.
	b := []byte{0, 0, 6, TypeSettings, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100,
		0, 0, 10, TypeHeaders, FlagEndHeaders | FlagPadded | FlagPriority, 0x80, 0, 0, 1,
		2, 0, 0, 0, 0, 16, 0x82, 0x86, 0, 0}
	for i := range len(b) {
		if _, _, ok := Next(b[:i]); ok && i < 15 {
			t.Fatalf("a frame from %d bytes", i)
		}
	}
	f, rest, ok := Next(b)
	if !ok || f.Type != TypeSettings || f.Stream != 0 || len(f.Payload) != 6 || len(rest) != 19 {
		t.Fatalf("first frame %+v ok=%v rest %d", f, ok, len(rest))
	}
	f, rest, ok = Next(rest)
	if !ok || f.Type != TypeHeaders || f.Stream != 1 || len(rest) != 0 {
		t.Fatalf("second frame %+v ok=%v rest %d (the reserved bit must be masked)", f, ok, len(rest))
	}
	if block, ok := f.HeaderBlock(); !ok || string(block) != "\x82\x86" {
		t.Errorf("header block %q ok=%v; want 82 86", block, ok)
	}
	for _, bad := range []Frame{
		{Type: TypeHeaders, Flags: FlagPadded},
		{Type: TypeHeaders, Flags: FlagPadded, Payload: []byte{5, 1, 2}},
		{Type: TypeHeaders, Flags: FlagPriority, Payload: []byte{1, 2, 3, 4}},
	} {
		if _, ok := bad.HeaderBlock(); ok {
			t.Errorf("HeaderBlock of %+v: ok", bad)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Next(b) }); n != 0 {
		t.Errorf("Next allocates %v times", n)
	}
}

func TestAppend(t *testing.T) {
	f, rest, ok := Next(AppendGoAway(nil, 1<<31|3, CodeSettingsTimeout))
	if !ok || len(rest) != 0 || f.Type != TypeGoAway || f.Stream != 0 {
		t.Fatalf("GOAWAY: %+v ok=%v rest %d", f, ok, len(rest))
	}
	if want := "\x00\x00\x00\x03\x00\x00\x00\x04"; string(f.Payload) != want {
		t.Errorf("GOAWAY payload %q; want %q (last stream without the reserved bit, then the code)", f.Payload, want)
	}
	big := make([]byte, 70000)
	g, _, ok := Next(Append(nil, TypeData, FlagEndStream, 5, big))
	if !ok || len(g.Payload) != len(big) || g.Flags != FlagEndStream || g.Stream != 5 {
		t.Errorf("DATA of %d bytes: %+v ok=%v", len(big), g.Flags, ok)
	}
}
