package stepup_test

// A Store that cannot answer (a shared store whose server went away) makes
// the guard fail closed with a 503 and Retry-After, names the cause, and
// leaves the park pending so that it completes once the store is back.

import (
	"context"
	"errors"
	"net/http"
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
type flakyStore struct {
	*stepup.MemoryStore
	down        atomic.Bool
	failConsume atomic.Bool
	lostPut     atomic.Bool // the next spent token is written, but its answer is lost
}

var errStoreDown = errors.New("store: connection refused")

func (s *flakyStore) Put(ctx context.Context, rec *stepup.Record) error {
	if s.down.Load() {
		return errStoreDown
	}
	if rec.Kind == stepup.KindUsed && s.lostPut.CompareAndSwap(true, false) {
		_ = s.MemoryStore.Put(ctx, rec)
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
		{"the spent token written, its answer lost", func(s *flakyStore) { s.lostPut.Store(true) }},
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
