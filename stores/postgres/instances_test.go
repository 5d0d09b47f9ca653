package pgstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

// TestTwoInstances runs two guards, each behind its own server, on one
// database: 50 concurrent callbacks over both run the parked request once,
// passes and grants cross, and the per-user cap holds across both.
func TestTwoInstances(t *testing.T) {
	srv := mustServer(t)
	stepuptest.RunShared(t, muxApp, func(now func() time.Time) stepup.Store {
		return pgstore.New(srv.newPool(t, 16), pgstore.Clock(now), pgstore.Timeout(10*time.Second))
	})
}

// TestDatabaseRestart stops PostgreSQL as a crash would (pg_ctl stop -m
// immediate) between the challenge and its callback: both instances fail
// closed where they need it (503 with Retry-After, the cause named,
// nothing parked or run: a new challenge is tracked, never parked), and
// still run what Authsignal allows; once the database is back, recovered from its write-ahead log, the
// pending park completes, once.
func TestDatabaseRestart(t *testing.T) {
	srv := startPostgres(t)
	pool := srv.newPool(t, 8)
	o := stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			return pgstore.New(pool, pgstore.Clock(now), pgstore.Timeout(5*time.Second))
		},
		Config: func(c *stepup.Config) { c.ProviderTimeout = 15 * time.Second },
	}
	env := stepuptest.NewEnv(t, muxApp, o)
	other := env.Instance(muxApp, o)
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil)))
	tracked := len(env.Emulator.Tracked())

	srv.stopImmediately()
	for _, target := range []string{stepuptest.OnInstance(cb, other), stepuptest.OnInstance(cb, env.Server)} {
		resp := b.Get(target)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"))
		assert.ErrorContains(t, env.Events.LastRefusal(), "pgstore: get: ")
	}
	resp := b.Do(http.MethodPost, other.URL+"/transfer", stepuptest.Form, "amount=7000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "no new challenge without the database")
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.ErrorContains(t, env.Events.LastRefusal(), "challenge counter: pgstore: reserve: ")
	assert.Len(t, env.Emulator.Tracked(), tracked+1, "Authsignal was asked; it challenged")
	assert.Empty(t, env.Ledger.Runs(""), "nothing ran")
	resp = b.Do(http.MethodPost, env.Server.URL+"/transfer", stepuptest.Form, "amount=5&to=carol", nil)
	assert.Equal(t, http.StatusOK, resp.StatusCode, "what Authsignal allows runs without the database: %s", resp.Body)
	assert.Len(t, env.Ledger.Runs("transfer"), 1)

	srv.start()
	require.Eventually(t, func() bool { return pool.Ping(context.Background()) == nil }, 30*time.Second, 20*time.Millisecond)
	resp = b.Get(stepuptest.OnInstance(cb, other))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, "done: transfer POST /transfer amount=5000&to=bob", resp.Body)
	again := b.Get(stepuptest.OnInstance(cb, env.Server))
	assert.Equal(t, resp.Body, again.Body, "a refresh on the first instance shows the kept outcome")
	assert.Len(t, env.Ledger.Runs("transfer"), 2, "the park completed once, after the allowed one")
}
