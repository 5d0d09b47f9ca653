package stepuptest

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runGrants checks Guard.Grants and Guard.Revoke through the application:
// the grants a user's browsers earned are listed, and revoking them makes
// each browser's next request a challenge again.
func runGrants(t *testing.T, a Adapter) {
	ctx := context.Background()
	t.Run("Grants lists the grant of every browser of the user, and only the user's", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		earned := env.Clock.Now()
		one, two := env.NewBrowser(), env.NewBrowser()
		one.Login("alice")
		two.Login("alice")
		earnGrant(t, env, one)
		earnGrant(t, env, two)

		grants, err := env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		require.Len(t, grants, 2)
		for _, g := range grants {
			assert.Equal(t, "admin", g.Action)
			assert.True(t, g.Earned.Equal(earned), "earned %v", g.Earned)
			assert.True(t, g.Expires.Equal(earned.Add(5*time.Minute)), "expires %v", g.Expires)
			assert.Equal(t, "EMAIL_OTP", g.Method, "the method validate named: the emulator's code by email")
		}
		none, err := env.Guard.Grants(ctx, "bob")
		require.NoError(t, err)
		assert.Empty(t, none, "bob earned nothing")
	})
	t.Run("Revoke of an action ends it in every browser; other actions and users keep theirs", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		one, two, bob := env.NewBrowser(), env.NewBrowser(), env.NewBrowser()
		one.Login("alice")
		two.Login("alice")
		bob.Login("bob")
		for _, b := range []*Browser{one, two, bob} {
			earnGrant(t, env, b)
		}

		require.NoError(t, env.Guard.Revoke(ctx, "alice", "report"))
		assert.Equal(t, http.StatusOK, one.Get("/admin").StatusCode, "another action's revocation ends nothing")
		require.NoError(t, env.Guard.Revoke(ctx, "alice", "report", "admin"))
		for _, b := range []*Browser{one, two} {
			b.Challenge(b.Get("/admin"))
		}
		assert.Equal(t, http.StatusOK, bob.Get("/admin").StatusCode, "bob's grant is bob's")
		grants, err := env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Empty(t, grants)
		grants, err = env.Guard.Grants(ctx, "bob")
		require.NoError(t, err)
		assert.Len(t, grants, 1)
	})
	t.Run("Revoke without an action ends them all; a grant earned afterwards holds", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		earnGrant(t, env, b)
		old := b.Jar.Cookies(mustURL(env.Server.URL))

		require.NoError(t, env.Guard.Revoke(ctx, "alice"))
		b.Challenge(b.Get("/admin"))
		b.Jar.SetCookies(mustURL(env.Server.URL), old) // the cookie rolled back names the revoked grant
		b.Challenge(b.Get("/admin"))

		earnGrant(t, env, b)
		grants, err := env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Len(t, grants, 1, "the new grant")
		assert.Equal(t, http.StatusOK, b.Get("/admin").StatusCode)
	})
	t.Run("Forget ends the browser's grant, and Grants no longer lists it", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		one, two := env.NewBrowser(), env.NewBrowser()
		one.Login("alice")
		two.Login("alice")
		earnGrant(t, env, one)
		earnGrant(t, env, two)
		one.Do(http.MethodPost, "/logout", Form, "", nil)

		grants, err := env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Len(t, grants, 1, "the other browser's")
		assert.Equal(t, http.StatusOK, two.Get("/admin").StatusCode)
	})
	t.Run("an expired grant is not listed", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		earnGrant(t, env, b)
		env.Clock.Advance(5*time.Minute - time.Millisecond)
		grants, err := env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Len(t, grants, 1, "live up to its expiry")
		env.Clock.Advance(time.Millisecond)
		grants, err = env.Guard.Grants(ctx, "alice")
		require.NoError(t, err)
		assert.Empty(t, grants, "gone at its expiry")
	})
}

// earnGrant completes a challenge for GET /admin in b, whose policy
// remembers, and uses its pass, so that b then holds a Remember grant for
// the action "admin".
func earnGrant(t testing.TB, env *Env, b *Browser) {
	t.Helper()
	resumed := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
	require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
	require.Equal(t, http.StatusOK, b.Get(resumed.Header.Get("Location")).StatusCode, "the pass")
	resp := b.Get("/admin")
	require.Equal(t, http.StatusOK, resp.StatusCode, "remembered: %s", resp.Body)
	runs := env.Ledger.Runs("admin")
	require.Equal(t, string(stepup.HowRemembered), runs[len(runs)-1].How)
}
