package stepup_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// The emulator lets the secret key's holder PATCH an action to any state,
// as the API does. A back office that marks an action CHALLENGE_SUCCEEDED
// makes every token naming it validate, the track token shown in the
// challenge URL included: the guard must still refuse that one, because it
// was handed out with the challenge and proves nothing about who completed
// it.
func TestServerSideSuccessDoesNotLetTheShownTokenRedeem(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil))
	shown := stepuptest.Param(challenge, "token")
	require.NotEmpty(t, shown)
	tracked := env.Emulator.Tracked()
	action := tracked[len(tracked)-1]

	_, err := env.Client.UpdateAction(t.Context(), "alice", "transfer", action.IdempotencyKey, authsignal.StateChallengeSucceeded)
	require.NoError(t, err)
	v, err := env.Client.Validate(t.Context(), authsignal.ValidateRequest{Token: shown, UserID: "alice", Action: "transfer"})
	require.NoError(t, err)
	require.True(t, v.IsValid, "the provider now calls the shown token valid")
	require.Equal(t, authsignal.StateChallengeSucceeded, v.State)

	back, err := url.Parse(action.RedirectURL)
	require.NoError(t, err)
	q := back.Query()
	q.Set("token", shown)
	back.RawQuery = q.Encode()
	resp := b.Get(back.String())

	assert.NotEqual(t, http.StatusOK, resp.StatusCode, "body %q", resp.Body)
	assert.Empty(t, env.Ledger.Runs("transfer"), "the parked transfer did not run")
	assert.ErrorContains(t, env.Events.LastRefusal(), "handed out with the challenge")
}

// A challenge that failed and is then marked CHALLENGE_SUCCEEDED by the
// back office (the API allows it) does not run the request parked for it:
// the guard gave the park up at the failed callback.
func TestServerSideSuccessAfterAFailedChallengeDoesNotReplay(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000&to=bob", nil))
	callback := b.Fail(challenge)
	require.Equal(t, http.StatusForbidden, b.Get(callback).StatusCode)
	tracked := env.Emulator.Tracked()
	action := tracked[len(tracked)-1]

	_, err := env.Client.UpdateAction(t.Context(), "alice", "transfer", action.IdempotencyKey, authsignal.StateChallengeSucceeded)
	require.NoError(t, err)
	token := stepuptest.Param(callback, "token")
	v, err := env.Client.Validate(t.Context(), authsignal.ValidateRequest{Token: token, UserID: "alice", Action: "transfer"})
	require.NoError(t, err)
	require.True(t, v.IsValid, "the provider now calls the failed challenge's token valid")

	resp := b.Get(callback)
	assert.NotEqual(t, http.StatusOK, resp.StatusCode, "body %q", resp.Body)
	assert.NotEqual(t, http.StatusSeeOther, resp.StatusCode)
	assert.Empty(t, env.Ledger.Runs("transfer"), "the parked transfer did not run")
	assert.Len(t, env.Events.Of(stepup.EventRefuse), 2)
}
