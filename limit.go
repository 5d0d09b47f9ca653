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
// user, opened and did not pass, so that Config.MaxChallengesPerUser and
// MaxChallengesPerSession can be enforced: one account cannot fill a
// bounded Store and lock everybody else out of step-up, and a stolen
// session cannot use up its user's cap. A Store that implements Counter
// counts for every instance that shares it, and the caps then hold across
// instances; with any other Store each guard counts in its own memory,
// and the caps apply per instance.
//
// The guard reserves a slot before it asks the provider, so concurrent
// requests never get past a cap; it releases the slot when the request does
// not open a challenge, and when the challenge is passed. The contract:
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
//   - Slots of different buckets (Slot.Bucket) never count against each
//     other: a user and a session have a count per bucket, each with the
//     caps Reserve is given. Every method acts in s.Bucket only. The
//     guard uses buckets to keep the challenges of sessions that already
//     passed one out of reach of fresh clients, and sign-in apart from
//     step-up (SECURITY.md). A Counter written before buckets existed
//     counts them all as one: the caps still hold, only less apart.
//
// Any other error means the counter could not answer: the guard then
// opens no challenge (503 with Retry-After where one is needed), and still
// asks the provider, running what it allows (see Guard.Enforce).
type Counter interface {
	Reserve(ctx context.Context, s Slot, perUser, perSession int) (wait time.Duration, err error)
	Attach(ctx context.Context, s Slot, session string) error
	Release(ctx context.Context, s Slot) error
}

// PassCounter is a Counter that moves the slot of a passed challenge in
// one step. When the guard's Counter implements it, a passed challenge
// costs one call (one round trip on a shared store) instead of a Reserve
// and two Releases. The contract, beside Counter's:
//   - Pass counts s as Reserve(ctx, s, ceiling, ceiling) would and, only
//     when it counted s, releases every slot of from as Release would;
//     checking, counting and releasing are one atomic step, across all
//     instances. The slots of from are of s.User.
//   - When the ceiling is reached Pass counts and releases nothing and
//     returns an error wrapping ErrTooManyChallenges.
//
// Any other error means the counter could not answer; the guard then
// leaves the slots where they were, to expire.
type PassCounter interface {
	Counter
	Pass(ctx context.Context, s Slot, ceiling int, from []Slot) error
}

// Slot is one challenge counted by a Counter.
//
// For Counter implementations; an application does not need it.
type Slot struct {
	ID      string    // unique per slot
	User    string    // the user id
	Session string    // the session id; "" when the request had none: only the user's cap applies
	Bucket  string    // the count it is in; "" is the step-up challenges of fresh sessions
	At      time.Time // when it was reserved
	Expires time.Time // when it stops counting: At plus Config.ParkTTL
}

// parkLimiter is the Counter a guard uses when its Store is not one: it
// counts in the memory of this process.
type parkLimiter struct {
	mu       sync.Mutex
	users    map[countKey][]stamp // per bucket and user (no session), oldest first
	sessions map[countKey][]stamp // per bucket, user and session
	calls    int
}

var _ PassCounter = (*parkLimiter)(nil)

// stamp is one counted slot.
type stamp struct {
	expires time.Time
	id      string
}

func newParkLimiter() *parkLimiter {
	return &parkLimiter{users: map[countKey][]stamp{}, sessions: map[countKey][]stamp{}}
}

// countKey names the count of a user in a bucket (session ""), or of one
// session of that user: session ids come from a cookie or the
// application, and are never trusted to be unique across users.
type countKey struct{ bucket, user, session string }

// Reserve implements Counter.
func (l *parkLimiter) Reserve(_ context.Context, s Slot, perUser, perSession int) (time.Duration, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.reserve(s, perUser, perSession)
}

// Pass implements PassCounter.
func (l *parkLimiter) Pass(_ context.Context, s Slot, ceiling int, from []Slot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.reserve(s, ceiling, ceiling); err != nil {
		return err
	}
	for _, f := range from {
		l.release(f)
	}
	return nil
}

// reserve is Reserve with l.mu held.
func (l *parkLimiter) reserve(s Slot, perUser, perSession int) (time.Duration, error) {
	now := s.At
	uk := countKey{s.Bucket, s.User, ""}
	if us := live(l.users, uk, now); len(us) >= perUser {
		return us[len(us)-perUser].expires.Sub(now), ErrTooManyChallenges
	}
	sk := countKey{s.Bucket, s.User, s.Session}
	if s.Session != "" {
		if ss := live(l.sessions, sk, now); len(ss) >= perSession {
			return ss[len(ss)-perSession].expires.Sub(now), ErrTooManyChallenges
		}
	}
	insert(l.users, uk, stamp{s.Expires, s.ID})
	if s.Session != "" {
		insert(l.sessions, sk, stamp{s.Expires, s.ID})
	}
	if l.calls++; l.calls%1024 == 0 {
		for _, m := range []map[countKey][]stamp{l.users, l.sessions} {
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
	insert(l.sessions, countKey{s.Bucket, s.User, session}, stamp{s.Expires, s.ID})
	return nil
}

// Release implements Counter.
func (l *parkLimiter) Release(_ context.Context, s Slot) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.release(s)
	return nil
}

// release is Release with l.mu held.
func (l *parkLimiter) release(s Slot) {
	unstamp(l.users, countKey{s.Bucket, s.User, ""}, s.ID)
	if s.Session != "" {
		unstamp(l.sessions, countKey{s.Bucket, s.User, s.Session}, s.ID)
	}
}

// insert adds st to the stamps of key, which stay ordered by expiry.
func insert(m map[countKey][]stamp, key countKey, st stamp) {
	ts := append(m[key], st)
	for i := len(ts) - 1; i > 0 && ts[i].expires.Before(ts[i-1].expires); i-- {
		ts[i], ts[i-1] = ts[i-1], ts[i]
	}
	m[key] = ts
}

func unstamp(m map[countKey][]stamp, key countKey, id string) {
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
func live(m map[countKey][]stamp, key countKey, now time.Time) []stamp {
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

// The kinds of challenges the guard counts apart, each in two buckets
// (Slot.Bucket): one for the sessions that are established (a challenge
// of the user was passed in them; with sign-in, a sign-in completed in
// them) and one for every other client. A thief holding a user's login
// session but not the second factor only ever fills the fresh bucket of a
// kind, and never reaches the user's established browsers, which count in
// the other (SECURITY.md, threat 23). Each bucket has the caps
// MaxChallengesPerUser and MaxChallengesPerSession: a user holds at most
// twice MaxChallengesPerUser unpassed challenges of a kind per ParkTTL. A
// third bucket of each kind counts the passed ones (releasePassed).
//
// A flow that opens challenges (enforce for step-up; sign-in the same way
// with kindSignIn) reserves with
// g.reserveIn(w, r, capBucket(kind, st.established(now)), id, user, session),
// releases the slot when no challenge is opened, and once the challenge
// is passed calls st.establish(now) and g.releasePassed(ctx, kind, id,
// user, session) (g.passed does both for step-up).
const (
	kindStepUp = ""       // challenges of protected routes
	kindSignIn = "signin" // challenges of guard.SignIn
)

// capBucket is the bucket of the challenges of kind opened from a session
// that is, or is not, established.
func capBucket(kind string, established bool) string {
	if established {
		return kind + "+established"
	}
	return kind
}

// reserveIn takes a slot in bucket (see capBucket) for a challenge of user
// in session (see Counter) or returns the refusal: a 429 with Retry-After
// when a cap is reached, a 503 when the counter could not answer.
func (g *Guard) reserveIn(w http.ResponseWriter, r *http.Request, bucket, id, user, session string) (Slot, *Error) {
	now := g.now()
	s := Slot{ID: id, User: user, Session: session, Bucket: bucket, At: now, Expires: now.Add(g.cfg.ParkTTL)}
	wait, err := g.limiter.Reserve(r.Context(), s, g.cfg.MaxChallengesPerUser, g.cfg.MaxChallengesPerSession)
	switch {
	case errors.Is(err, ErrTooManyChallenges):
		w.Header().Set("Retry-After", fmt.Sprint(max(1, int((wait+time.Second-1)/time.Second))))
		return Slot{}, refusal(http.StatusTooManyRequests, "too_many_challenges",
			"Too many verifications were started. Nothing was done; finish or wait for the open ones.", err)
	case err != nil:
		return Slot{}, refusal(http.StatusServiceUnavailable, "busy",
			"Verification is unavailable right now. Nothing was done; please try again in a moment.",
			fmt.Errorf("%w: challenge counter: %w", ErrInternal, storeFault{err}))
	}
	return s, nil
}

// capSession is the session id the caps count r's challenges by: the
// application's (Config.SessionID), else the guard's own, "" when st is
// nil or has none yet.
func (g *Guard) capSession(r *http.Request, st *sessionState) string {
	switch {
	case g.cfg.SessionID != nil:
		return g.cfg.SessionID(r)
	case st != nil:
		return st.data.ID
	}
	return ""
}

// passed records that the challenge of rec was passed in r, whose guard
// session is st: the session is established for rec's user, and the
// challenge's slot is given back (releasePassed). The caller saves st.
func (g *Guard) passed(r *http.Request, st *sessionState, rec *Record) {
	st.establish(g.now())
	g.releasePassed(r.Context(), kindStepUp, rec.ID, rec.UserID, g.capSession(r, st))
}

// passedPerUser is how many passed challenges of a kind per ParkTTL give
// their slot back, as a multiple of MaxChallengesPerUser: one every six
// seconds with the defaults, a pace no person passing a second factor
// keeps up. Beyond it a passed challenge counts as an unpassed one does,
// so that an account that passes its own second factor at machine speed
// cannot fill the Store with what passed challenges leave there (spent
// tokens, kept answers, passes, grants) either.
const passedPerUser = 5

// releasePassed gives back the slot id of a challenge of kind that was
// passed (its token spent): a passed challenge no longer counts against
// its user or session. It was counted in the fresh or the established
// bucket of kind, for session or for the one made for it (which the
// callback's session carries); both buckets are released. The passed
// challenge is counted instead in the passed bucket of kind, under the
// user's ceiling (passedPerUser): beyond it, or when the counter fails,
// the slot stays where it was, to expire.
func (g *Guard) releasePassed(ctx context.Context, kind, id, user, session string) {
	now := g.now()
	ceiling := passedPerUser * g.cfg.MaxChallengesPerUser
	s := Slot{ID: id, User: user, Bucket: kind + "+passed", At: now, Expires: now.Add(g.cfg.ParkTTL)}
	from := []Slot{
		{ID: id, User: user, Session: session, Bucket: capBucket(kind, false)},
		{ID: id, User: user, Session: session, Bucket: capBucket(kind, true)},
	}
	if pc, ok := g.limiter.(PassCounter); ok {
		_ = pc.Pass(ctx, s, ceiling, from) // one step; an error leaves the slot to expire
		return
	}
	if _, err := g.limiter.Reserve(ctx, s, ceiling, ceiling); err != nil {
		return
	}
	for _, f := range from {
		_ = g.limiter.Release(ctx, f)
	}
}
