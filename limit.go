package stepup

import (
	"sync"
	"time"
)

// parkLimiter caps how many challenges one user may open within a window,
// so that a single account cannot fill a bounded Store and lock everybody
// else out of step-up. It counts per process; with several instances the
// cap applies on each.
type parkLimiter struct {
	mu     sync.Mutex
	max    int
	window time.Duration
	recent map[string][]time.Time // per user, oldest first
	calls  int
}

func newParkLimiter(max int, window time.Duration) *parkLimiter {
	return &parkLimiter{max: max, window: window, recent: map[string][]time.Time{}}
}

// allow reports whether user may open another challenge at now.
func (l *parkLimiter) allow(user string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.live(user, now)) < l.max
}

// add counts a challenge opened at now.
func (l *parkLimiter) add(user string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recent[user] = append(l.live(user, now), now)
	if l.calls++; l.calls%1024 == 0 {
		for u := range l.recent {
			l.live(u, now)
		}
	}
}

// live drops the times of user that left the window; l.mu is held.
func (l *parkLimiter) live(user string, now time.Time) []time.Time {
	ts := l.recent[user]
	i := 0
	for i < len(ts) && !now.Before(ts[i].Add(l.window)) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.recent, user)
		return nil
	}
	l.recent[user] = ts
	return ts
}
