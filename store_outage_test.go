package stepup_test

// A Store that cannot answer (a shared store whose server went away) makes
// the guard fail closed with a 503 and Retry-After, names the cause, and
// leaves the park pending so that it completes once the store is back.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// flakyStore is a MemoryStore that can be taken down, or made to fail the
// next Consume only, as a shared store fails when its server goes away.
// It is a plain Store: the guard spends a token on it with a Put and a
// Consume (flakySpender spends in one step).
type flakyStore struct {
	mem         *stepup.MemoryStore
	down        atomic.Bool
	failConsume atomic.Bool
	lostPut     atomic.Bool // the next spent token is written, but its answer is lost
}

var errStoreDown = errors.New("store: connection refused")

func newFlakyStore(now func() time.Time) *flakyStore {
	return &flakyStore{mem: stepup.NewMemoryStore(stepup.MemoryClock(now))}
}

func (s *flakyStore) Len() int { return s.mem.Len() }

func (s *flakyStore) Put(ctx context.Context, rec *stepup.Record) error {
	if s.down.Load() {
		return errStoreDown
	}
	if rec.Kind == stepup.KindUsed && s.lostPut.CompareAndSwap(true, false) {
		_ = s.mem.Put(ctx, rec)
		return errStoreDown
	}
	return s.mem.Put(ctx, rec)
}

func (s *flakyStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.mem.Get(ctx, id)
}

func (s *flakyStore) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	if s.down.Load() || s.failConsume.CompareAndSwap(true, false) {
		return nil, errStoreDown
	}
	return s.mem.Consume(ctx, id)
}

func (s *flakyStore) Delete(ctx context.Context, id string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.mem.Delete(ctx, id)
}

// flakySpender is a flakyStore that spends in one step (stepup.Spender),
// one Spend at a time: failConsume fails the next Spend with nothing
// done, lostPut does the next Spend and loses its answer.
type flakySpender struct {
	*flakyStore
	mu *sync.Mutex
}

var _ stepup.Spender = flakySpender{}

func (s flakySpender) Spend(ctx context.Context, used *stepup.Record, park string) (*stepup.Record, error) {
	if s.down.Load() || s.failConsume.CompareAndSwap(true, false) {
		return nil, errStoreDown
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.mem.Get(ctx, park)
	switch {
	case err != nil:
		return nil, err
	case p.Consumed:
		return nil, stepup.ErrConsumed
	}
	if err := s.mem.Put(ctx, used); err != nil {
		return nil, err
	}
	rec, err := s.mem.Consume(ctx, park)
	if err == nil && s.lostPut.CompareAndSwap(true, false) {
		return nil, errStoreDown
	}
	return rec, err
}

func TestStoreDownFailsClosedAndTheParkSurvives(t *testing.T) {
	for _, tc := range []struct {
		name string
		when func(s *flakyStore)
		// A Spender's one step done with its answer lost: the park was
		// consumed and never ran; at most once, it is refused as used.
		endedBySpender bool
	}{
		{"store down at the callback", func(s *flakyStore) { s.down.Store(true) }, false},
		{"store lost between spending the token and consuming the park", func(s *flakyStore) { s.failConsume.Store(true) }, false},
		{"the spent token written, its answer lost", func(s *flakyStore) { s.lostPut.Store(true) }, true},
	} {
		for _, spender := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/spender=%t", tc.name, spender), func(t *testing.T) {
				var store *flakyStore
				env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
					store = newFlakyStore(now)
					if spender {
						return flakySpender{store, &sync.Mutex{}}
					}
					return store
				}})
				b := env.NewBrowser()
				b.Login("alice")
				cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))

				tc.when(store)
				resp := b.Get(cb)
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
				assert.Equal(t, "5", resp.Header.Get("Retry-After"))
				assert.ErrorIs(t, env.Events.LastRefusal(), errStoreDown, "the cause is named")
				assert.Empty(t, env.Ledger.Runs("transfer"))

				store.down.Store(false)
				resp = b.Get(cb)
				if spender && tc.endedBySpender {
					assert.Equal(t, http.StatusConflict, resp.StatusCode, resp.Body)
					assert.Empty(t, env.Ledger.Runs("transfer"), "never run")
					return
				}
				require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
				assert.Len(t, env.Ledger.Runs("transfer"), 1, "the park completed once the store was back")
			})
		}
	}
}

// flakyCounter is a flakyStore that also counts the challenge caps
// (stepup.Counter), as a shared store does, and can be taken down alone:
// counterDown fails the counter and leaves the records readable.
type flakyCounter struct {
	*flakyStore
	caps        stepup.Counter
	counterDown atomic.Bool
}

var errCounterSlow = errors.New("counter: i/o timeout")

func (c *flakyCounter) err() error {
	switch {
	case c.down.Load():
		return errStoreDown
	case c.counterDown.Load():
		return errCounterSlow
	}
	return nil
}

func (c *flakyCounter) Reserve(ctx context.Context, s stepup.Slot, perUser, perSession int) (time.Duration, error) {
	if err := c.err(); err != nil {
		return 0, err
	}
	return c.caps.Reserve(ctx, s, perUser, perSession)
}

func (c *flakyCounter) Attach(ctx context.Context, s stepup.Slot, session string) error {
	if err := c.err(); err != nil {
		return err
	}
	return c.caps.Attach(ctx, s, session)
}

func (c *flakyCounter) Release(ctx context.Context, s stepup.Slot) error {
	if err := c.err(); err != nil {
		return err
	}
	return c.caps.Release(ctx, s)
}

// outageEnv is an Env on a flakyCounter whose /transfer policy remembers a
// passed step-up for five minutes; log collects the guard's log lines.
func outageEnv(t *testing.T, log *syncBuffer) (*stepuptest.Env, *flakyCounter) {
	t.Helper()
	var store *flakyCounter
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			store = &flakyCounter{flakyStore: newFlakyStore(now),
				caps: stepup.NewParkLimiter()}
			return store
		},
		Config: func(c *stepup.Config) {
			for i := range c.Policies {
				if c.Policies[i].Route == "/transfer" {
					c.Policies[i].Remember = 5 * time.Minute
				}
			}
			c.MaxChallengesPerUser, c.MaxChallengesPerSession = 1, 1
			if log != nil {
				c.Logger = slog.New(slog.NewTextHandler(log, nil))
			}
		},
	})
	return env, store
}

// TestStoreOutageStopsOnlyWhatNeedsTheStore: with the Store and Counter
// down, or the Counter alone, what Authsignal allows still runs and is
// tracked as usual; what needs a challenge is a 503 with Retry-After,
// tracked but never parked, counted or run; a Remember grant that cannot
// be read is no grant.
func TestStoreOutageStopsOnlyWhatNeedsTheStore(t *testing.T) {
	for _, tc := range []struct {
		name  string
		down  func(s *flakyCounter)
		cause error
	}{
		{"store and counter down", func(s *flakyCounter) { s.down.Store(true) }, errStoreDown},
		{"counter down, records readable", func(s *flakyCounter) { s.counterDown.Store(true) }, errCounterSlow},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, store := outageEnv(t, nil)
			b := env.NewBrowser()
			b.Login("alice")
			tc.down(store)
			tracked := len(env.Emulator.Tracked())

			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Len(t, env.Ledger.Runs("transfer"), 1, "an ALLOW needs no store: it runs")
			allows := env.Events.Of(stepup.EventAllow)
			require.Len(t, allows, 1)
			assert.ErrorIs(t, allows[0].Err, tc.cause, "the allow names what could not answer")
			assert.Len(t, env.Emulator.Tracked(), tracked+1)

			for _, req := range []struct {
				name string
				do   func() *stepuptest.Response
			}{
				{"browser", func() *stepuptest.Response {
					return b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
				}},
				{"api", func() *stepuptest.Response { return b.API(http.MethodPost, "/api/transfer", `{"amount":5000}`, nil) }},
				{"get", func() *stepuptest.Response { return b.Get("/report") }},
			} {
				tracked := len(env.Emulator.Tracked())
				resp := req.do()
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "%s: %s", req.name, resp.Body)
				assert.Equal(t, "5", resp.Header.Get("Retry-After"), req.name)
				assert.ErrorIs(t, env.Events.LastRefusal(), tc.cause, req.name)
				assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrInternal, req.name)
				assert.Len(t, env.Emulator.Tracked(), tracked+1, "%s: Authsignal was asked", req.name)
			}
			assert.Empty(t, env.Events.Of(stepup.EventChallenge), "no challenge opened")
			assert.Zero(t, store.Len(), "nothing parked")
			assert.Len(t, env.Ledger.Runs(""), 1, "only the allowed transfer ran")

			// Back up: nothing was counted during the outage (the cap is
			// one), so the next challenge opens, and completes once.
			store.down.Store(false)
			store.counterDown.Store(false)
			cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=6000", nil)))
			require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
			assert.Len(t, env.Ledger.Runs("transfer"), 2)
		})
	}
}

// TestStoreOutageGrantUnreadableIsNoGrant: a Remember grant the store
// cannot read does not let a request through: it is judged afresh, so
// an amount Authsignal allows runs and one it challenges is a 503.
func TestStoreOutageGrantUnreadableIsNoGrant(t *testing.T) {
	env, store := outageEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
	tracked := len(env.Emulator.Tracked())
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=7000", nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, "the grant lets it through: %s", resp.Body)
	require.Len(t, env.Emulator.Tracked(), tracked, "on the grant, without asking Authsignal")

	store.down.Store(true)
	resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=7000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
	assert.Len(t, env.Emulator.Tracked(), tracked+1, "no grant read: judged afresh")
	resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=8", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 3)
	assert.Contains(t, string(runs[2].Body), "amount=8", "the allowed one ran, the challenged one did not")
	allows := env.Events.Of(stepup.EventAllow)
	assert.Equal(t, "allow", allows[len(allows)-1].Reason, "on Authsignal's ALLOW, not a grant")
}

// TestStoreOutageStoreDownCounterUp: a Store that cannot park with a
// counter that works gives the slot back: the cap (one) is free again
// once the store is.
func TestStoreOutageStoreDownCounterUp(t *testing.T) {
	var store *flakyStore
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			store = newFlakyStore(now)
			return store
		},
		Config: func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 1, 1 },
	})
	b := env.NewBrowser()
	b.Login("alice")
	store.down.Store(true)
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
	assert.ErrorIs(t, env.Events.LastRefusal(), errStoreDown)
	assert.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5", nil).StatusCode)
	store.down.Store(false)
	b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil))
}

// TestStoreOutageLoggedOncePerInterval: every request is an event, but
// the log names a store fault once per 10 seconds, then says how many
// lines it left out.
func TestStoreOutageLoggedOncePerInterval(t *testing.T) {
	var log syncBuffer
	env, store := outageEnv(t, &log)
	b := env.NewBrowser()
	b.Login("alice")
	store.down.Store(true)
	lines := func() []string {
		var out []string
		for _, l := range strings.Split(log.String(), "\n") {
			if strings.Contains(l, errStoreDown.Error()) {
				out = append(out, l)
			}
		}
		return out
	}
	for _, step := range []struct {
		advance time.Duration
		lines   int
		skipped string
	}{
		{0, 1, ""}, // the first is logged, and says nothing was left out
		{0, 1, ""},
		{5 * time.Second, 1, ""},
		{5*time.Second - time.Nanosecond, 1, ""}, // 9.999… s after the first line
		{time.Nanosecond, 2, "store_faults_not_logged=3"},
		{9 * time.Second, 2, ""},
		{time.Second, 3, "store_faults_not_logged=1"},
	} {
		env.Clock.Advance(step.advance)
		resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
		require.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
		got := lines()
		require.Len(t, got, step.lines, log.String())
		if step.skipped != "" {
			assert.Contains(t, got[len(got)-1], step.skipped)
		}
	}
	assert.NotContains(t, lines()[0], "store_faults_not_logged")
	assert.Len(t, env.Events.Of(stepup.EventRefuse), 7, "an event per request")
	for range 2 {
		other := b.Do(http.MethodPost, "/transfer", "multipart/form-data; boundary=x", "--x--", nil)
		assert.Equal(t, http.StatusUnsupportedMediaType, other.StatusCode)
	}
	assert.Equal(t, 2, strings.Count(log.String(), "reason=unsupported_body"), "other causes are logged each time")
}

// shortGetter is a MultiGetter that answers one record fewer than asked.
type shortGetter struct{ *flakyStore }

func (s shortGetter) GetMany(ctx context.Context, ids ...string) ([]*stepup.Record, error) {
	out := make([]*stepup.Record, 0, len(ids))
	for _, id := range ids[:len(ids)-1] {
		rec, err := s.mem.Get(ctx, id)
		if err != nil {
			rec = nil
		}
		out = append(out, rec)
	}
	return out, nil
}

// TestMultiGetterAnsweringTooFewIsAFault: a MultiGetter whose answer does
// not have a record per id is a store that cannot answer: 503, nothing
// runs.
func TestMultiGetterAnsweringTooFewIsAFault(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return shortGetter{newFlakyStore(now)}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	resp := b.Get(cb)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
	assert.ErrorContains(t, env.Events.LastRefusal(), "GetMany returned 1 records for 2 ids")
	assert.Empty(t, env.Ledger.Runs(""))
}
