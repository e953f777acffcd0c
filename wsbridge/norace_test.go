//go:build !race

package wsbridge

const raceEnabled = false
