package stepup

import (
	"sync"
	"time"
)

// parkLimiter caps how many challenges one user, and one session of a
// user, may open within a window, so that a single account cannot fill a
// bounded Store and lock everybody else out of step-up, and a stolen
// session cannot use up its user's cap. A slot is reserved before the
// provider is asked and released when the request does not end in a
// challenge, so concurrent requests never get past a cap. It counts per
// process; with several instances the caps apply on each.
type parkLimiter struct {
	mu         sync.Mutex
	perUser    int
	perSession int
	window     time.Duration
	recent     map[string][]stamp // per user, and per user and session; oldest first
	seq        uint64
	calls      int
}

// stamp is one counted challenge.
type stamp struct {
	at time.Time
	id uint64
}

// slot is a reservation made by reserve.
type slot struct {
	user, session string // limiter keys; session is "" when there is none
	id            uint64
}

func newParkLimiter(perUser, perSession int, window time.Duration) *parkLimiter {
	return &parkLimiter{perUser: perUser, perSession: perSession, window: window, recent: map[string][]stamp{}}
}

// reserve counts a challenge for user and session at now when both are
// under their caps. Otherwise it returns false and how long until the
// oldest counted challenge in the way leaves the window. session "" has
// no cap of its own.
func (l *parkLimiter) reserve(user, session string, now time.Time) (slot, time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slot{user: "u\x00" + user}
	if session != "" {
		s.session = "s\x00" + user + "\x00" + session
	}
	if us := l.live(s.user, now); len(us) >= l.perUser {
		return slot{}, us[len(us)-l.perUser].at.Add(l.window).Sub(now), false
	}
	if s.session != "" {
		if ss := l.live(s.session, now); len(ss) >= l.perSession {
			return slot{}, ss[len(ss)-l.perSession].at.Add(l.window).Sub(now), false
		}
	}
	l.seq++
	s.id = l.seq
	l.recent[s.user] = append(l.recent[s.user], stamp{now, s.id})
	if s.session != "" {
		l.recent[s.session] = append(l.recent[s.session], stamp{now, s.id})
	}
	if l.calls++; l.calls%1024 == 0 {
		for k := range l.recent {
			l.live(k, now)
		}
	}
	return s, 0, true
}

// release gives back a slot whose request did not open a challenge.
func (l *parkLimiter) release(s slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range []string{s.user, s.session} {
		if k == "" {
			continue
		}
		ts := l.recent[k]
		for i := range ts {
			if ts[i].id == s.id {
				ts = append(ts[:i:i], ts[i+1:]...)
				break
			}
		}
		if len(ts) == 0 {
			delete(l.recent, k)
		} else {
			l.recent[k] = ts
		}
	}
}

// live drops the stamps of key that left the window; l.mu is held.
func (l *parkLimiter) live(key string, now time.Time) []stamp {
	ts := l.recent[key]
	i := 0
	for i < len(ts) && !now.Before(ts[i].at.Add(l.window)) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(l.recent, key)
		return nil
	}
	l.recent[key] = ts
	return ts
}
