//go:build !linux

package loadgen

// h1Loop is the Linux event loop; elsewhere HTTP1 and Upgrade426 run on
// goroutine workers.
type h1Loop struct{ run func() }

func newH1Loops(*runner, []byte) ([]*h1Loop, bool) { return nil, false }
