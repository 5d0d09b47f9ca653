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
	users      map[string][]stamp // per user id, oldest first
	sessions   map[string][]stamp // per sessionKey
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
	user    string
	session string // a limitKey, "" when the request had no session
	id      uint64
	at      time.Time
}

func newParkLimiter(perUser, perSession int, window time.Duration) *parkLimiter {
	return &parkLimiter{perUser: perUser, perSession: perSession, window: window,
		users: map[string][]stamp{}, sessions: map[string][]stamp{}}
}

// limitKey names one session of one user: session ids come from a cookie
// or the application, and are never trusted to be unique across users.
func limitKey(user, session string) string { return user + "\x00" + session }

// reserve counts a challenge for user and session at now when both are
// under their caps. Otherwise it returns false and how long until the
// oldest counted challenge in the way leaves the window. session "" has
// no cap of its own.
func (l *parkLimiter) reserve(user, session string, now time.Time) (slot, time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slot{user: user, at: now}
	if us := live(l.users, user, now, l.window); len(us) >= l.perUser {
		return slot{}, us[len(us)-l.perUser].at.Add(l.window).Sub(now), false
	}
	if session != "" {
		s.session = limitKey(user, session)
		if ss := live(l.sessions, s.session, now, l.window); len(ss) >= l.perSession {
			return slot{}, ss[len(ss)-l.perSession].at.Add(l.window).Sub(now), false
		}
	}
	l.seq++
	s.id = l.seq
	l.users[user] = append(l.users[user], stamp{now, s.id})
	if s.session != "" {
		l.sessions[s.session] = append(l.sessions[s.session], stamp{now, s.id})
	}
	if l.calls++; l.calls%1024 == 0 {
		for _, m := range []map[string][]stamp{l.users, l.sessions} {
			for k := range m {
				live(m, k, now, l.window)
			}
		}
	}
	return s, 0, true
}

// attach counts a slot reserved without a session for session too: the
// session made for the challenge the slot opened. Its count starts there.
func (l *parkLimiter) attach(s slot, session string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := limitKey(s.user, session)
	l.sessions[k] = append(l.sessions[k], stamp{s.at, s.id})
}

// release gives back a slot whose request did not open a challenge.
func (l *parkLimiter) release(s slot) {
	l.mu.Lock()
	defer l.mu.Unlock()
	unstamp(l.users, s.user, s.id)
	if s.session != "" {
		unstamp(l.sessions, s.session, s.id)
	}
}

func unstamp(m map[string][]stamp, key string, id uint64) {
	ts := m[key]
	for i := range ts {
		if ts[i].id == id {
			ts = append(ts[:i:i], ts[i+1:]...)
			break
		}
	}
	if len(ts) == 0 {
		delete(m, key)
	} else {
		m[key] = ts
	}
}

// live drops the stamps of key that left the window; l.mu is held.
func live(m map[string][]stamp, key string, now time.Time, window time.Duration) []stamp {
	ts := m[key]
	i := 0
	for i < len(ts) && !now.Before(ts[i].at.Add(window)) {
		i++
	}
	ts = ts[i:]
	if len(ts) == 0 {
		delete(m, key)
		return nil
	}
	m[key] = ts
	return ts
}
