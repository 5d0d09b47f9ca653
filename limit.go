package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Counter counts the challenges that each user, and each session of a
// user, opened, so that Config.MaxChallengesPerUser and
// MaxChallengesPerSession can be enforced: one account cannot fill a
// bounded Store and lock everybody else out of step-up, and a stolen
// session cannot use up its user's cap. A Store that implements Counter
// counts for every instance that shares it, and the caps then hold across
// instances; with any other Store each guard counts in its own memory,
// and the caps apply per instance.
//
// The guard reserves a slot before it asks the provider, so concurrent
// requests never get past a cap, and releases it when the request does not
// open a challenge. The contract:
//   - Reserve counts s for s.User, and for the session s.Session of s.User
//     when it is not "", if the slots counted for each that have not
//     expired at s.At are fewer than perUser and perSession. Checking both
//     caps and counting is one atomic step, across all instances. When a
//     cap is reached Reserve counts nothing and returns an error wrapping
//     ErrTooManyChallenges, with how long until the oldest slot in the way
//     expires.
//   - Attach counts a reserved slot for session as well (the session the
//     guard made for the challenge the slot opened), until s.Expires.
//   - Release gives back a reserved slot: it no longer counts for s.User
//     or s.Session. Releasing a slot that is not counted is not an error.
//   - A slot counts from s.At until s.Expires; sessions are counted per
//     user: the same session id of two users is two sessions.
//
// Any other error means the counter could not answer: the guard then
// fails closed with a 503 and tracks nothing.
type Counter interface {
	Reserve(ctx context.Context, s Slot, perUser, perSession int) (wait time.Duration, err error)
	Attach(ctx context.Context, s Slot, session string) error
	Release(ctx context.Context, s Slot) error
}

// Slot is one challenge counted by a Counter.
type Slot struct {
	ID      string    // unique per slot
	User    string    // the user id
	Session string    // the session id; "" when the request had none: only the user's cap applies
	At      time.Time // when it was reserved
	Expires time.Time // when it stops counting: At plus Config.ParkTTL
}

// parkLimiter is the Counter a guard uses when its Store is not one: it
// counts in the memory of this process.
type parkLimiter struct {
	mu       sync.Mutex
	users    map[string][]stamp // per user id, oldest first
	sessions map[string][]stamp // per limitKey
	calls    int
}

var _ Counter = (*parkLimiter)(nil)

// stamp is one counted slot.
type stamp struct {
	expires time.Time
	id      string
}

func newParkLimiter() *parkLimiter {
	return &parkLimiter{users: map[string][]stamp{}, sessions: map[string][]stamp{}}
}

// limitKey names one session of one user: session ids come from a cookie
// or the application, and are never trusted to be unique across users.
func limitKey(user, session string) string { return user + "\x00" + session }

// Reserve implements Counter.
func (l *parkLimiter) Reserve(_ context.Context, s Slot, perUser, perSession int) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := s.At
	if us := live(l.users, s.User, now); len(us) >= perUser {
		return us[len(us)-perUser].expires.Sub(now), ErrTooManyChallenges
	}
	sk := ""
	if s.Session != "" {
		sk = limitKey(s.User, s.Session)
		if ss := live(l.sessions, sk, now); len(ss) >= perSession {
			return ss[len(ss)-perSession].expires.Sub(now), ErrTooManyChallenges
		}
	}
	insert(l.users, s.User, stamp{s.Expires, s.ID})
	if sk != "" {
		insert(l.sessions, sk, stamp{s.Expires, s.ID})
	}
	if l.calls++; l.calls%1024 == 0 {
		for _, m := range []map[string][]stamp{l.users, l.sessions} {
			for k := range m {
				live(m, k, now)
			}
		}
	}
	return 0, nil
}

// Attach implements Counter.
func (l *parkLimiter) Attach(_ context.Context, s Slot, session string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	insert(l.sessions, limitKey(s.User, session), stamp{s.Expires, s.ID})
	return nil
}

// Release implements Counter.
func (l *parkLimiter) Release(_ context.Context, s Slot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	unstamp(l.users, s.User, s.ID)
	if s.Session != "" {
		unstamp(l.sessions, limitKey(s.User, s.Session), s.ID)
	}
	return nil
}

// insert adds st to the stamps of key, which stay ordered by expiry.
func insert(m map[string][]stamp, key string, st stamp) {
	ts := append(m[key], st)
	for i := len(ts) - 1; i > 0 && ts[i].expires.Before(ts[i-1].expires); i-- {
		ts[i], ts[i-1] = ts[i-1], ts[i]
	}
	m[key] = ts
}

func unstamp(m map[string][]stamp, key, id string) {
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

// live drops the stamps of key that expired at now; l.mu is held.
func live(m map[string][]stamp, key string, now time.Time) []stamp {
	ts := m[key]
	i := 0
	for i < len(ts) && !now.Before(ts[i].expires) {
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

// reserve takes a slot for a challenge of user in session (see Counter)
// or returns the refusal: a 429 with Retry-After when a cap is reached, a
// 503 when the counter could not answer.
func (g *Guard) reserve(w http.ResponseWriter, r *http.Request, id, user, session string) (Slot, *Error) {
	now := g.now()
	s := Slot{ID: id, User: user, Session: session, At: now, Expires: now.Add(g.cfg.ParkTTL)}
	wait, err := g.limiter.Reserve(r.Context(), s, g.cfg.MaxChallengesPerUser, g.cfg.MaxChallengesPerSession)
	switch {
	case errors.Is(err, ErrTooManyChallenges):
		w.Header().Set("Retry-After", fmt.Sprint(max(1, int((wait+time.Second-1)/time.Second))))
		return Slot{}, refusal(http.StatusTooManyRequests, "too_many_challenges",
			"Too many verifications were started. Nothing was done; finish or wait for the open ones.", err)
	case err != nil:
		return Slot{}, refusal(http.StatusServiceUnavailable, "busy",
			"Verification is unavailable right now. Nothing was done; please try again in a moment.",
			fmt.Errorf("%w: challenge counter: %w", ErrInternal, err))
	}
	return s, nil
}
