package stepuptest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// RunStore runs the Store contract (see stepup.Store) against the stores
// that newStore returns; each must use now as its clock. A Store that is a
// stepup.Spender or a stepup.MultiGetter is held to that contract too.
func RunStore(t *testing.T, newStore func(now func() time.Time) stepup.Store) {
	ctx := context.Background()
	rec := func(clock *Clock, id string) *stepup.Record {
		return &stepup.Record{
			ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
			Path: "/transfer", Query: "a=1", Header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			Body: []byte("amount=5000"), BodyHash: []byte("fedcba9876543210fedcba9876543210"),
			Judged:             []byte("judged9876543210judged9876543210"),
			Shown:              [][]byte{[]byte("0123456789abcdef0123456789abcdef")},
			Sealed:             []byte("\x01 what the guard sealed: the store keeps it as it keeps Body"),
			VerificationMethod: "PASSKEY",
			Created:            clock.Now(), Expires: clock.Now().Add(time.Minute),
		}
	}

	t.Run("put then get returns an equal copy", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		in := rec(clock, "a")
		require.NoError(t, s.Put(ctx, in))
		in.Body[0] = 'X' // the store must not keep the caller's memory
		in.Header.Set("Content-Type", "changed")
		in.Shown[0][0] = 'X'
		in.BodyHash[0] = 'X'
		in.Judged[0] = 'X'
		in.Sealed[0] = 'X'
		got, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "amount=5000", string(got.Body))
		assert.Equal(t, "application/x-www-form-urlencoded", got.Header.Get("Content-Type"))
		assert.Equal(t, "/transfer", got.Path)
		assert.Equal(t, "PASSKEY", got.VerificationMethod)
		assert.Equal(t, [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, got.Shown)
		assert.Equal(t, "fedcba9876543210fedcba9876543210", string(got.BodyHash))
		assert.Equal(t, "judged9876543210judged9876543210", string(got.Judged), "the judged digest round-trips")
		assert.Equal(t, "\x01 what the guard sealed: the store keeps it as it keeps Body", string(got.Sealed))
		assert.True(t, got.Expires.Equal(clock.Now().Add(time.Minute)))
		assert.False(t, got.Consumed)
		got.Body[0] = 'Y'
		got.Shown[0][0] = 'Y'
		got.Judged[0] = 'Y'
		again, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "amount=5000", string(again.Body))
		assert.Equal(t, byte('j'), again.Judged[0])
		assert.Equal(t, byte('0'), again.Shown[0][0])
	})
	t.Run("missing is ErrNotFound", func(t *testing.T) {
		s := newStore(NewClock().Now)
		_, err := s.Get(ctx, "nope")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		_, err = s.Consume(ctx, "nope")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		assert.NoError(t, s.Delete(ctx, "nope"))
	})
	t.Run("put never overwrites", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		other := rec(clock, "a")
		other.UserID = "mallory"
		assert.ErrorIs(t, s.Put(ctx, other), stepup.ErrExists)
		got, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "alice", got.UserID)
	})
	t.Run("consume once", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		got, err := s.Consume(ctx, "a")
		require.NoError(t, err)
		assert.True(t, got.Consumed)
		assert.Equal(t, "amount=5000", string(got.Body))
		_, err = s.Consume(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrConsumed)
		after, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.True(t, after.Consumed, "a consumed record stays readable until it expires")
	})
	// A user's Remember grants live in a few slot ids that the guard takes
	// with Put and ends with Consume: a consumed record must keep its id
	// until it expires, so that a slot is never reused while a browser may
	// still name the grant that was in it.
	t.Run("a consumed record keeps its id until it expires", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		_, err := s.Consume(ctx, "a")
		require.NoError(t, err)
		assert.ErrorIs(t, s.Put(ctx, rec(clock, "a")), stepup.ErrExists)
		clock.Advance(time.Minute - time.Millisecond)
		assert.ErrorIs(t, s.Put(ctx, rec(clock, "a")), stepup.ErrExists, "a millisecond before its expiry")
		got, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.True(t, got.Consumed)
		clock.Advance(time.Millisecond)
		fresh := rec(clock, "a")
		require.NoError(t, s.Put(ctx, fresh), "free once expired")
		got, err = s.Get(ctx, "a")
		require.NoError(t, err)
		assert.False(t, got.Consumed, "the new record, pending")
		assert.True(t, got.Expires.Equal(fresh.Expires))
	})
	t.Run("expiry is exact", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		clock.Advance(time.Minute - time.Millisecond)
		_, err := s.Get(ctx, "a")
		require.NoError(t, err)
		clock.Advance(time.Millisecond)
		_, err = s.Get(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		_, err = s.Consume(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		assert.NoError(t, s.Put(ctx, rec(clock, "a")), "an expired id can be used again")
	})
	t.Run("delete", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		require.NoError(t, s.Delete(ctx, "a"))
		_, err := s.Get(ctx, "a")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
	})
	t.Run("concurrent consume: exactly one winner", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		for round := range 20 {
			id := fmt.Sprintf("r%d", round)
			require.NoError(t, s.Put(ctx, rec(clock, id)))
			var wins, consumed atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					_, err := s.Consume(ctx, id)
					switch {
					case err == nil:
						wins.Add(1)
					case assert.ErrorIs(t, err, stepup.ErrConsumed):
						consumed.Add(1)
					}
				}()
			}
			close(start)
			wg.Wait()
			require.Equal(t, int32(1), wins.Load(), "round %d", round)
			require.Equal(t, int32(15), consumed.Load())
		}
	})
	spender := func(t *testing.T, clock *Clock) stepup.Spender {
		t.Helper()
		sp, ok := newStore(clock.Now).(stepup.Spender)
		if !ok {
			t.Skip("the Store does not implement stepup.Spender")
		}
		return sp
	}
	used := func(clock *Clock, id, park string) *stepup.Record {
		return &stepup.Record{ID: id, Kind: stepup.KindUsed, Park: park, Created: clock.Now(), Expires: clock.Now().Add(2 * time.Minute)}
	}
	t.Run("spend puts the token and consumes the park in one step (Spender)", func(t *testing.T) {
		clock := NewClock()
		s := spender(t, clock)
		require.NoError(t, s.Put(ctx, rec(clock, "p")))
		got, err := s.Spend(ctx, used(clock, "t1", "p"), "p")
		require.NoError(t, err)
		assert.Equal(t, "p", got.ID)
		assert.Equal(t, "amount=5000", string(got.Body), "the park, as Consume returns it")
		assert.True(t, got.Consumed)
		u, err := s.Get(ctx, "t1")
		require.NoError(t, err, "the token is spent")
		assert.Equal(t, stepup.KindUsed, u.Kind)
		assert.Equal(t, "p", u.Park)
		_, err = s.Consume(ctx, "p")
		assert.ErrorIs(t, err, stepup.ErrConsumed, "the park is consumed")

		_, err = s.Spend(ctx, used(clock, "t2", "p"), "p")
		assert.ErrorIs(t, err, stepup.ErrConsumed, "a park is spent once")
		_, err = s.Get(ctx, "t2")
		assert.ErrorIs(t, err, stepup.ErrNotFound, "a refused spend writes nothing")
	})
	t.Run("spend of a spent token consumes nothing (Spender)", func(t *testing.T) {
		clock := NewClock()
		s := spender(t, clock)
		require.NoError(t, s.Put(ctx, rec(clock, "p")))
		require.NoError(t, s.Put(ctx, used(clock, "t1", "other")))
		_, err := s.Spend(ctx, used(clock, "t1", "p"), "p")
		assert.ErrorIs(t, err, stepup.ErrExists)
		p, err := s.Get(ctx, "p")
		require.NoError(t, err)
		assert.False(t, p.Consumed, "the park is still pending")
		u, err := s.Get(ctx, "t1")
		require.NoError(t, err)
		assert.Equal(t, "other", u.Park, "never overwritten")
	})
	t.Run("spend of a missing or expired park writes nothing (Spender)", func(t *testing.T) {
		clock := NewClock()
		s := spender(t, clock)
		_, err := s.Spend(ctx, used(clock, "t1", "nothing"), "nothing")
		assert.ErrorIs(t, err, stepup.ErrNotFound)
		require.NoError(t, s.Put(ctx, rec(clock, "p"))) // expires in a minute
		clock.Advance(time.Minute)
		_, err = s.Spend(ctx, used(clock, "t2", "p"), "p")
		assert.ErrorIs(t, err, stepup.ErrNotFound, "expired at its Expires exactly")
		for _, id := range []string{"t1", "t2"} {
			_, err = s.Get(ctx, id)
			assert.ErrorIs(t, err, stepup.ErrNotFound, id)
		}
	})
	t.Run("concurrent spends of one park: exactly one winner (Spender)", func(t *testing.T) {
		clock := NewClock()
		s := spender(t, clock)
		for round := range 10 {
			park := fmt.Sprintf("r%d", round)
			require.NoError(t, s.Put(ctx, rec(clock, park)))
			var wins, lost atomic.Int32
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range 16 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					token := fmt.Sprintf("%s.t%d", park, i%4) // four tokens, each sent four times
					_, err := s.Spend(ctx, used(clock, token, park), park)
					switch {
					case err == nil:
						wins.Add(1)
					case errors.Is(err, stepup.ErrConsumed) || errors.Is(err, stepup.ErrExists):
						lost.Add(1)
					default:
						t.Errorf("spend: %v", err)
					}
				}()
			}
			close(start)
			wg.Wait()
			require.Equal(t, int32(1), wins.Load(), "round %d", round)
			require.Equal(t, int32(15), lost.Load())
		}
	})
	t.Run("get many: each as Get returns it, nil where Get finds nothing (MultiGetter)", func(t *testing.T) {
		clock := NewClock()
		st := newStore(clock.Now)
		s, ok := st.(stepup.MultiGetter)
		if !ok {
			t.Skip("the Store does not implement stepup.MultiGetter")
		}
		require.NoError(t, s.Put(ctx, rec(clock, "a")))
		short := rec(clock, "short")
		short.Expires = clock.Now().Add(time.Second)
		require.NoError(t, s.Put(ctx, short))
		require.NoError(t, s.Put(ctx, rec(clock, "c")))
		_, err := s.Consume(ctx, "c")
		require.NoError(t, err)
		clock.Advance(time.Second)
		got, err := s.GetMany(ctx, "a", "missing", "short", "c")
		require.NoError(t, err)
		require.Len(t, got, 4)
		require.NotNil(t, got[0])
		assert.Equal(t, "a", got[0].ID)
		assert.Equal(t, "amount=5000", string(got[0].Body))
		assert.False(t, got[0].Consumed)
		assert.Nil(t, got[1], "missing")
		assert.Nil(t, got[2], "expired at its Expires exactly")
		require.NotNil(t, got[3])
		assert.True(t, got[3].Consumed, "consumed, as Get says")
		got[0].Body[0] = 'X'
		again, err := s.Get(ctx, "a")
		require.NoError(t, err)
		assert.Equal(t, "amount=5000", string(again.Body), "a copy")
		none, err := s.GetMany(ctx)
		require.NoError(t, err)
		assert.Empty(t, none)
	})
	t.Run("concurrent put of one id: exactly one winner", func(t *testing.T) {
		clock := NewClock()
		s := newStore(clock.Now)
		var wins atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				if s.Put(ctx, rec(clock, "same")) == nil {
					wins.Add(1)
				}
			}()
		}
		close(start)
		wg.Wait()
		assert.Equal(t, int32(1), wins.Load())
	})
}

// Instance starts another instance of env's application: its own guard,
// built with o (o.Store is ignored), on env's Store, provider, clock,
// ledger and session keys, behind its own server. A request may land on
// any instance; only the Store holds what they share.
func (env *Env) Instance(a Adapter, o Options) *httptest.Server {
	env.T.Helper()
	_, srv := env.serve(a, o)
	return srv
}

// OnInstance returns rawURL (such as a callback URL) pointing at srv,
// as a load balancer would send it there.
func OnInstance(rawURL string, srv *httptest.Server) string { return onInstance(rawURL, srv) }

// RunShared runs flows across two instances of a's application that share
// one Store, as newStore returns it (with the clock it gets): a park, its
// spent token, the pass and the Remember grant that follow it are seen by
// both instances, and a park is replayed exactly once whichever instances
// its callbacks reach. When the Store is a stepup.Counter, the challenge
// caps hold across both instances too.
func RunShared(t *testing.T, a Adapter, newStore func(now func() time.Time) stepup.Store) {
	// Fifty concurrent validations on a loaded machine can take longer than
	// the suite's short provider deadline; a 503 would be a correct
	// fail-closed answer, but not the race this is about.
	slow := func(c *stepup.Config) { c.ProviderTimeout = 30 * time.Second }
	twoInstances := func(t *testing.T, config func(*stepup.Config)) (*Env, *httptest.Server) {
		o := Options{Store: newStore, Config: func(c *stepup.Config) {
			slow(c)
			if config != nil {
				config(c)
			}
		}}
		env := NewEnv(t, a, o)
		return env, env.Instance(a, o)
	}

	t.Run("50 concurrent callbacks over both instances: exactly one execution", func(t *testing.T) {
		env, other := twoInstances(t, nil)
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=bob", nil)))
		targets := []string{onInstance(cb, env.Server), onInstance(cb, other)}
		statuses := make([]int, 50)
		bodies := make([]string, 50)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range statuses {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, err := http.NewRequest(http.MethodGet, targets[i%2], nil)
				if !assert.NoError(t, err) {
					return
				}
				req.Header.Set("Accept", "text/html")
				<-start
				resp, err := b.C.Do(req)
				if !assert.NoError(t, err) {
					return
				}
				defer resp.Body.Close()
				body, _ := io.ReadAll(resp.Body)
				statuses[i], bodies[i] = resp.StatusCode, string(body)
			}()
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, s := range statuses {
			require.Contains(t, []int{http.StatusOK, http.StatusConflict}, s, "a clear answer, never an error: %s", bodies[i])
			if s == http.StatusOK {
				ok++
				assert.Equal(t, "done: transfer POST /transfer amount=5000&to=bob", bodies[i])
			}
		}
		assert.GreaterOrEqual(t, ok, 1)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1, "exactly one execution")
		assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
	})
	t.Run("a sign-in challenged on one instance completes on the other; 50 concurrent callbacks, one Complete", func(t *testing.T) {
		// The adapter mounts Handlers.SignIn at POST /signin (see RunSignIn).
		env, other := twoInstances(t, nil)
		b := env.NewBrowser()
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		targets := []string{onInstance(cb, other), onInstance(cb, env.Server)}
		statuses := getAtOnce(b, targets, 50)
		done := 0
		for _, s := range statuses {
			require.Contains(t, []int{http.StatusSeeOther, http.StatusConflict}, s, "a clear answer, never an error: %v", statuses)
			if s == http.StatusSeeOther {
				done++
			}
		}
		assert.GreaterOrEqual(t, done, 1)
		assert.Equal(t, []string{"alice"}, env.completions(), "exactly one Complete")
		assert.Equal(t, "alice", b.User())
	})
	t.Run("a review parked on one instance runs once from both, concurrently", func(t *testing.T) {
		env, other := twoInstances(t, ReviewConfig)
		runSharedReview(t, env, other)
	})
	t.Run("the pass and the Remember grant of one instance hold on the other", func(t *testing.T) {
		env, other := twoInstances(t, nil)
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Get("/admin")))
		resumed := b.Get(onInstance(cb, env.Server))
		require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
		again := b.Get(onInstance(cb, other))
		assert.Equal(t, http.StatusSeeOther, again.StatusCode, "the other instance shows the kept outcome")
		assert.Equal(t, resumed.Header.Get("Location"), again.Header.Get("Location"))

		pass := b.Get(other.URL + resumed.Header.Get("Location"))
		require.Equal(t, http.StatusOK, pass.StatusCode, pass.Body)
		remembered := b.Get(other.URL + "/admin")
		require.Equal(t, http.StatusOK, remembered.StatusCode, remembered.Body)
		runs := env.Ledger.Runs("admin")
		require.Len(t, runs, 2)
		assert.Equal(t, "pass", runs[0].How)
		assert.Equal(t, "remembered", runs[1].How)
	})
	t.Run("grants earned on one instance are listed and revoked on the other", func(t *testing.T) {
		env, other := twoInstances(t, nil)
		ctx := context.Background()
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Get("/admin")))
		resumed := b.Get(onInstance(cb, other)) // the other instance's guard writes the grant
		require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
		require.Equal(t, http.StatusOK, b.Get(other.URL+resumed.Header.Get("Location")).StatusCode, "the pass")
		require.Equal(t, http.StatusOK, b.Get(other.URL+"/admin").StatusCode, "remembered on the instance that granted it")

		grants, err := env.Guard.Grants(ctx, "alice") // the first instance's guard
		require.NoError(t, err)
		require.Len(t, grants, 1)
		assert.Equal(t, "admin", grants[0].Action)
		require.NoError(t, env.Guard.Revoke(ctx, "alice"))
		b.Challenge(b.Get(other.URL + "/admin")) // revoked on the instance that granted it
		b.Challenge(b.Get("/admin"))             // and on this one
		grants, err = env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Empty(t, grants)
	})
	t.Run("a challenge passed on either instance gives its slot back on both", func(t *testing.T) {
		if _, ok := newStore(NewClock().Now).(stepup.Counter); !ok {
			t.Skip("the Store is not a stepup.Counter: each instance counts on its own")
		}
		env, other := twoInstances(t, func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 4, 2 })
		servers := []*httptest.Server{env.Server, other}
		b := env.NewBrowser()
		b.Login("alice")
		for i := range 5 { // more than either cap: opened on one instance, passed on the other
			body := fmt.Sprintf("amount=%d", 2000+i)
			u, err := env.Emulator.CompleteChallenge(context.Background(),
				b.Challenge(b.Do(http.MethodPost, servers[i%2].URL+"/transfer", Form, body, nil)))
			require.NoError(t, err)
			done := b.Get(onInstance(u.String(), servers[(i+1)%2]))
			require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
			assert.Equal(t, "done: transfer POST /transfer "+body, done.Body)
		}
		for i, srv := range servers {
			b.Challenge(b.Do(http.MethodPost, srv.URL+"/transfer", Form, fmt.Sprintf("amount=%d", 3000+i), nil))
		}
		for _, srv := range servers {
			over := b.Do(http.MethodPost, srv.URL+"/transfer", Form, "amount=4000", nil)
			assert.Equal(t, http.StatusTooManyRequests, over.StatusCode, "unpassed challenges count on both instances")
		}
		assert.Len(t, env.Ledger.Runs("transfer"), 5)
	})
	t.Run("the per-user cap holds across instances", func(t *testing.T) {
		if _, ok := newStore(NewClock().Now).(stepup.Counter); !ok {
			t.Skip("the Store is not a stepup.Counter: each instance counts on its own")
		}
		env, other := twoInstances(t, func(c *stepup.Config) { c.MaxChallengesPerUser = 3 })
		servers := []*httptest.Server{env.Server, other}
		statuses := map[int]int{}
		for i := range 8 {
			b := env.NewBrowser() // a session each: only the user's cap applies
			b.Login("alice")
			resp := b.Do(http.MethodPost, servers[i%2].URL+"/transfer", Form, fmt.Sprintf("amount=%d", 5000+i), nil)
			statuses[resp.StatusCode]++
			if resp.StatusCode == http.StatusTooManyRequests {
				assert.NotEmpty(t, resp.Header.Get("Retry-After"))
			}
		}
		assert.Equal(t, map[int]int{http.StatusSeeOther: 3, http.StatusTooManyRequests: 5}, statuses)
		assert.Len(t, env.Emulator.Tracked(), 3, "a request beyond the cap is never tracked")
	})
}
