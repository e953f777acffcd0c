package sniff

import "testing"

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, s string
		want bool
	}{
		{"Content-Length", "content-length", true},
		{"content-length", "Content-Length", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"content-length", "content-length", true},
		{"content-lengt", "content-length", false},
		{"content-lengthx", "content-length", false},
		{"", "", true},
		{"[", "{", false}, // '[' is 'Z'+1, not a letter
		{"@", "`", false}, // '@' is 'A'-1
		{"\xc4", "\xe4", false},
		{"\xe2\x84\xaa", "k", false}, // the Kelvin sign, which Unicode folds to k
	} {
		if got := EqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v; want %v", tc.b, tc.s, got, tc.want)
		}
	}
}

func TestEqualFoldAllocs(t *testing.T) {
	b := []byte("Transfer-Encoding")
	if n := testing.AllocsPerRun(100, func() { EqualFold(b, "transfer-encoding") }); n != 0 {
		t.Errorf("%v allocations; want 0", n)
	}
}
