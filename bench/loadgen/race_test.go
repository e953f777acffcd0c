//go:build race

package loadgen

// raceEnabled: the race detector adds allocations of its own, so the
// allocation guards run only without it (.ci/run does both).
const raceEnabled = true
