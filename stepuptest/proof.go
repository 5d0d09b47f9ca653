package stepuptest

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runProof checks that only the proof of the challenge redeems a park
// (SECURITY.md threat 18): not the token the challenge URL carries, which
// whoever opens the page can read, and not a callback in another session
// than the park's. The attacker holds a stolen session of the victim
// (logged in as the same user, with a browser of its own) and gets the
// victim to complete the challenge it started.
func runProof(t *testing.T, a Adapter) {
	t.Run("the challenge URL's token never redeems a park", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		attacker, victim := env.NewBrowser(), env.NewBrowser()
		attacker.Login("alice")
		victim.Login("alice")
		challenge := attacker.Challenge(attacker.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=mallory", nil))
		shown := Param(challenge, "token")
		require.NotEmpty(t, shown)

		// The victim completes it; the attacker, who knows its own park
		// id, presents the token it read in the URL before the victim's
		// browser is back.
		cb := victim.Complete(challenge)
		require.NotEqual(t, shown, Param(cb, "token"))
		resp := attacker.Get(WithParam(cb, "token", shown))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
		assert.True(t, refusedWith(env, stepup.ErrStepUpFailed))
	})
	t.Run("the challenge URL's token never redeems an API challenge", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		attacker, victim := env.NewBrowser(), env.NewBrowser()
		attacker.Login("alice")
		victim.Login("alice")
		body := `{"amount": 5000, "to": "mallory"}`
		resp := attacker.API(http.MethodPost, "/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		var doc struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		challenge := doc.URL
		shown := Param(challenge, "token")
		require.NotEmpty(t, shown)

		victim.Complete(challenge)
		retry := attacker.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {shown}})
		assert.Equal(t, http.StatusForbidden, retry.StatusCode, retry.Body)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		assert.True(t, refusedWith(env, stepup.ErrStepUpFailed))
	})
	t.Run("the victim's callback ends the park the attacker started", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		attacker, victim := env.NewBrowser(), env.NewBrowser()
		attacker.Login("alice")
		victim.Login("alice")
		challenge := attacker.Challenge(attacker.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=mallory", nil))

		// The victim completes the challenge and lands on the callback,
		// in a session that never parked anything.
		cb := victim.Complete(challenge)
		assert.Equal(t, http.StatusForbidden, victim.Get(cb).StatusCode)
		refused := env.Events.LastRefusal()
		require.Error(t, refused)
		assert.Contains(t, refused.Error(), "ended", "the log says the park was ended, not that ending it failed")
		assert.NotContains(t, refused.Error(), "ending it")

		// Even with the victim's own token, leaked later, the attacker's
		// session cannot redeem the park any more.
		resp := attacker.Get(cb)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("another user's callback does not end a park", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		alice, bob := env.NewBrowser(), env.NewBrowser()
		alice.Login("alice")
		bob.Login("bob")
		cb := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		assert.Equal(t, http.StatusForbidden, bob.Get(cb).StatusCode)
		require.Equal(t, http.StatusOK, alice.Get(cb).StatusCode, "only the park's own user can end it")
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
}

// refusedWith reports whether the guard reported a refusal wrapping target.
func refusedWith(env *Env, target error) bool {
	for _, ev := range env.Events.All() {
		if ev.Type == stepup.EventRefuse && errors.Is(ev.Err, target) {
			return true
		}
	}
	return false
}
