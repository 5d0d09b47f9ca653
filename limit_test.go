package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestParkLimiterContract(t *testing.T) {
	stepuptest.RunCounter(t, stepup.NewParkLimiter)
}

// sharedStore is a MemoryStore that is also a Counter, as a shared store
// such as stores/redis is: every guard on it counts in one place.
type sharedStore struct {
	*stepup.MemoryStore
	stepup.Counter
}

func TestSharedStoreAndCounter(t *testing.T) {
	stepuptest.RunShared(t, guardedApp, func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), stepup.NewParkLimiter()}
	})
}

// brokenCounter is a Counter that cannot answer.
type brokenCounter struct{}

var errCounterDown = errors.New("counter: connection refused")

func (brokenCounter) Reserve(context.Context, stepup.Slot, int, int) (time.Duration, error) {
	return 0, errCounterDown
}
func (brokenCounter) Attach(context.Context, stepup.Slot, string) error { return errCounterDown }
func (brokenCounter) Release(context.Context, stepup.Slot) error        { return errCounterDown }

func TestCounterDownFailsClosed(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), brokenCounter{}}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.Equal(t, "5", resp.Header.Get("Retry-After"))
	assert.Empty(t, env.Emulator.Tracked(), "nothing is tracked without a slot")
	assert.Empty(t, env.Ledger.Runs(""))
	err := env.Events.LastRefusal()
	assert.ErrorIs(t, err, errCounterDown, "the cause is named")
	assert.ErrorContains(t, err, "challenge counter")
}

// flakyStore is a MemoryStore that can be taken down, or made to fail the
// next Consume only, as a shared store fails when its server goes away.
type flakyStore struct {
	*stepup.MemoryStore
	down        atomic.Bool
	failConsume atomic.Bool
}

var errStoreDown = errors.New("store: connection refused")

func (s *flakyStore) Put(ctx context.Context, rec *stepup.Record) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Put(ctx, rec)
}

func (s *flakyStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	if s.down.Load() {
		return nil, errStoreDown
	}
	return s.MemoryStore.Get(ctx, id)
}

func (s *flakyStore) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	if s.down.Load() || s.failConsume.CompareAndSwap(true, false) {
		return nil, errStoreDown
	}
	return s.MemoryStore.Consume(ctx, id)
}

func (s *flakyStore) Delete(ctx context.Context, id string) error {
	if s.down.Load() {
		return errStoreDown
	}
	return s.MemoryStore.Delete(ctx, id)
}

func TestStoreDownFailsClosedAndTheParkSurvives(t *testing.T) {
	for _, tc := range []struct {
		name string
		when func(s *flakyStore)
	}{
		{"store down at the callback", func(s *flakyStore) { s.down.Store(true) }},
		{"store lost between spending the token and consuming the park", func(s *flakyStore) { s.failConsume.Store(true) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var store *flakyStore
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
				store = &flakyStore{MemoryStore: stepup.NewMemoryStore(stepup.MemoryClock(now))}
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
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Len(t, env.Ledger.Runs("transfer"), 1, "the park completed once the store was back")
		})
	}
}

// fullCounter is a Counter whose caps are always reached, with no time
// left to wait.
type fullCounter struct{ brokenCounter }

func (fullCounter) Reserve(context.Context, stepup.Slot, int, int) (time.Duration, error) {
	return 0, fmt.Errorf("shared caps: %w", stepup.ErrTooManyChallenges)
}

func TestCounterRefusal(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
		return sharedStore{stepup.NewMemoryStore(stepup.MemoryClock(now)), fullCounter{}}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
	assert.Equal(t, "1", resp.Header.Get("Retry-After"), "never 0: a client would retry at once")
	assert.Empty(t, env.Emulator.Tracked())
	assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrTooManyChallenges)
	assert.ErrorContains(t, env.Events.LastRefusal(), "shared caps", "a wrapped refusal keeps its words")
}
