// Package testtool finds the external programs that tests drive (curl,
// haproxy, chromium, ...). Without one a test is skipped, unless the CI
// environment variable is set: there a missing tool is a failure, since
// .ci/run installs every tool the tests need.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of program name, or skips (outside CI) or fails
// (under CI) the test.
func Need(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s is not installed; .ci/run installs it", name)
		}
		t.Skipf("%s is not installed (CI unset, so skipping)", name)
	}
	return p
}
