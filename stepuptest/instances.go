package stepuptest

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runInstances runs one application as two instances behind a load
// balancer: two guards and two servers sharing the Store, the session keys
// and the emulator, each with its own in-process state. Which instance a
// request lands on must not matter, and a park is still replayed at most
// once across both.
func runInstances(t *testing.T, a Adapter) {
	t.Run("challenge on one instance, callback on the other: replayed once", func(t *testing.T) {
		env, other := newTwoInstances(t, a)
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=bob", nil)))
		require.True(t, onInstance(cb, env.Server) != onInstance(cb, other), "two distinct instances")

		resp := b.Get(onInstance(cb, other))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
		assert.Equal(t, "challenge", runs[0].How)

		// A refresh on the first instance shows the kept outcome.
		again := b.Get(onInstance(cb, env.Server))
		assert.Equal(t, http.StatusOK, again.StatusCode)
		assert.Equal(t, resp.Body, again.Body)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
	t.Run("20 concurrent callbacks over both instances: exactly one execution", func(t *testing.T) {
		env, other := newTwoInstances(t, a)
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		targets := []string{onInstance(cb, env.Server), onInstance(cb, other)}
		statuses := getAtOnce(b, targets, 20)
		ok := 0
		for _, s := range statuses {
			assert.Contains(t, []int{http.StatusOK, http.StatusConflict}, s, "a clear answer, never an error")
			if s == http.StatusOK {
				ok++
			}
		}
		assert.GreaterOrEqual(t, ok, 1)
		assert.Len(t, env.Ledger.Runs("transfer"), 1, "exactly one execution")
	})
}

// newTwoInstances starts env (the first instance, env.Server) and a second
// instance of the same application on the same Store, emulator, clock,
// ledger and session keys.
func newTwoInstances(t *testing.T, a Adapter) (*Env, *httptest.Server) {
	t.Helper()
	// Twenty concurrent validations on a loaded two-core machine can take
	// longer than the suite's short provider deadline; a 503 would be a
	// correct fail-closed answer, but not the race this test is about.
	o := Options{Config: func(c *stepup.Config) { c.ProviderTimeout = 15 * time.Second }}
	env := NewEnv(t, a, o)
	_, other := env.serve(a, o)
	return env, other
}
