package redisstore_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// TestTwoInstances runs two guards, each behind its own server, on one
// Redis: 50 concurrent callbacks over both run the parked request once,
// passes and grants cross, and the per-user cap holds across both.
func TestTwoInstances(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			stepuptest.RunShared(t, muxApp, func(now func() time.Time) stepup.Store {
				return redisstore.New(b.client(t), freshPrefix(), redisstore.Clock(now))
			})
		})
	}
}

// TestRedisRestart kills redis-server between the challenge and its
// callback: both instances fail closed where they need Redis (503 with
// Retry-After, the cause named, nothing run: the callback, a new
// challenge, which Authsignal is asked about but which is never parked),
// and still run what Authsignal allows; once Redis is back from its
// append-only file the pending park completes, once.
func TestRedisRestart(t *testing.T) {
	srv := startRedis(t)
	client := srv.client()
	t.Cleanup(func() { client.Close() })
	o := stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			return redisstore.New(client, redisstore.Clock(now), redisstore.Timeout(5*time.Second))
		},
		Config: func(c *stepup.Config) { c.ProviderTimeout = 15 * time.Second },
	}
	env := stepuptest.NewEnv(t, muxApp, o)
	other := env.Instance(muxApp, o)
	b := env.NewBrowser()
	b.Login("alice")
	cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil)))
	tracked := len(env.Emulator.Tracked())

	srv.kill()
	for _, target := range []string{stepuptest.OnInstance(cb, other), stepuptest.OnInstance(cb, env.Server)} {
		resp := b.Get(target)
		assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
		assert.Equal(t, "5", resp.Header.Get("Retry-After"))
		assert.ErrorContains(t, env.Events.LastRefusal(), "redisstore: get: ")
	}
	resp := b.Do(http.MethodPost, other.URL+"/transfer", stepuptest.Form, "amount=7000", nil)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "no new challenge without Redis")
	assert.NotEmpty(t, resp.Header.Get("Retry-After"))
	assert.ErrorContains(t, env.Events.LastRefusal(), "challenge counter: redisstore: reserve: ")
	assert.Len(t, env.Emulator.Tracked(), tracked+1, "Authsignal was asked; it challenged")
	assert.Empty(t, env.Ledger.Runs(""), "nothing ran")
	for _, target := range []string{other.URL, env.Server.URL} {
		resp = b.Do(http.MethodPost, target+"/transfer", stepuptest.Form, "amount=5&to=carol", nil)
		assert.Equal(t, http.StatusOK, resp.StatusCode, "what Authsignal allows runs without Redis: %s", resp.Body)
	}
	require.Len(t, env.Ledger.Runs("transfer"), 2)
	allows := env.Events.Of(stepup.EventAllow)
	assert.ErrorContains(t, allows[len(allows)-1].Err, "redisstore: reserve: ", "the allow names what was down")
	assert.Equal(t, http.StatusServiceUnavailable, b.Get(other.URL+"/report").StatusCode, "a GET that needs a challenge")

	srv.start()
	require.Eventually(t, func() bool { return client.Ping(context.Background()).Err() == nil }, 10*time.Second, 10*time.Millisecond)
	resp = b.Get(stepuptest.OnInstance(cb, other))
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, "done: transfer POST /transfer amount=5000&to=bob", resp.Body)
	again := b.Get(stepuptest.OnInstance(cb, env.Server))
	assert.Equal(t, resp.Body, again.Body, "a refresh on the first instance shows the kept outcome")
	assert.Len(t, env.Ledger.Runs("transfer"), 3, "the park completed once, after the two allowed")
}
