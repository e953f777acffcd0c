package mux

import "sync"

// limiter counts slots up to a limit that may change while slots are
// held: MaxPending and MaxConns. A limit of zero or less means no limit.
// Its zero value is a limiter without a limit.
type limiter struct {
	mu    sync.Mutex
	limit int
	used  int
	room  chan struct{} // closed when room may have appeared; nil if nobody waits
}

// acquire takes a slot, waiting for one while the limit is reached. It
// returns false, taking nothing, if stop or cancel (which may be nil) is
// closed first.
func (l *limiter) acquire(stop, cancel <-chan struct{}) bool {
	l.mu.Lock()
	for l.limit > 0 && l.used >= l.limit {
		if l.room == nil {
			l.room = make(chan struct{})
		}
		room := l.room
		l.mu.Unlock()
		select {
		case <-room:
		case <-stop:
			return false
		case <-cancel:
			return false
		}
		l.mu.Lock()
	}
	l.used++
	l.mu.Unlock()
	return true
}

// release gives a slot back.
func (l *limiter) release() {
	l.mu.Lock()
	l.used--
	l.wakeLocked()
	l.mu.Unlock()
}

// setLimit changes the limit; the slots held stay held.
func (l *limiter) setLimit(n int) {
	l.mu.Lock()
	l.limit = n
	l.wakeLocked()
	l.mu.Unlock()
}

func (l *limiter) wakeLocked() {
	if l.room != nil && (l.limit <= 0 || l.used < l.limit) {
		close(l.room)
		l.room = nil
	}
}

// inUse returns how many slots are held.
func (l *limiter) inUse() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used
}
