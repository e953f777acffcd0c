// Package ascii holds the ASCII helpers that the mux and the load tool
// share. Its functions are pure: no allocation, no state.
package ascii

// EqualFold reports whether b equals lower, ignoring ASCII case in b;
// lower must be in lower case.
func EqualFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
