package ascii

import "testing"

func TestEqualFold(t *testing.T) {
	for _, tc := range []struct {
		b, lower string
		want     bool
	}{
		{"Content-Length", "content-length", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"content-length", "content-length", true},
		{"content-lengt", "content-length", false},
		{"content-lengthx", "content-length", false},
		{"", "", true},
		{"[", "{", false}, // '[' is 'Z'+1, not a letter
		{"@", "`", false}, // '@' is 'A'-1
		{"\xc4", "\xe4", false},
	} {
		if got := EqualFold([]byte(tc.b), tc.lower); got != tc.want {
			t.Errorf("EqualFold(%q, %q) = %v; want %v", tc.b, tc.lower, got, tc.want)
		}
	}
}

func TestEqualFoldAllocs(t *testing.T) {
	b := []byte("Transfer-Encoding")
	if n := testing.AllocsPerRun(100, func() { EqualFold(b, "transfer-encoding") }); n != 0 {
		t.Errorf("%v allocations; want 0", n)
	}
}
