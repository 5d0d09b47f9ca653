package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The login is MFA at sign-in (guard.SignIn): a browser alice never
// signed in from is challenged after the password, and let in only once
// the challenge is passed; the next login from the same browser goes
// straight in; another browser is challenged again.
func TestSignInChallengesANewDeviceOnly(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser()
	form := url.Values{"username": {"alice"}, "password": {"alice-password"}}
	challenge := tb.challenged(alice.post("/login", form))
	assert.Equal(t, "/login", alice.get("/dashboard").Location, "not logged in before the second factor")

	done := alice.get(tb.complete(challenge))
	require.Equal(t, http.StatusSeeOther, done.Status, done.Body)
	assert.Equal(t, "/dashboard", done.Location)
	assert.Equal(t, http.StatusOK, alice.get("/dashboard").Status)
	signIns := tb.app.Emulator().Tracked()
	require.NotEmpty(t, signIns)
	first := signIns[len(signIns)-1]
	assert.Equal(t, "signIn", first.Action)
	assert.Len(t, first.Request.DeviceID, 32, "the browser's device id goes to Authsignal")

	require.Equal(t, http.StatusSeeOther, alice.post("/logout", url.Values{}).Status)
	again := alice.post("/login", form)
	require.Equal(t, http.StatusSeeOther, again.Status, again.Body)
	assert.Equal(t, "/dashboard", again.Location, "a known device is let in at once")
	assert.Equal(t, http.StatusOK, alice.get("/dashboard").Status)

	tb.challenged(tb.newUser().post("/login", form)) // another browser: challenged
}

// Login CSRF: bob passes the challenge of his own sign-in and makes alice
// open the callback URL. Nobody is signed in in alice's browser, as bob
// or at all.
func TestSignInCallbackInAnotherBrowserSignsNobodyIn(t *testing.T) {
	tb := startBank(t)
	bob := tb.newUser()
	callback := tb.complete(tb.challenged(bob.post("/login", url.Values{"username": {"bob"}, "password": {"bob-password"}})))

	victim := tb.newUser()
	resp := victim.get(callback)
	assert.GreaterOrEqual(t, resp.Status, 400, resp.Body)
	assert.Less(t, resp.Status, 500, resp.Body)
	assert.Equal(t, "/login", victim.get("/dashboard").Location)

	alice := tb.newUser().login("alice")
	resp = alice.get(callback)
	assert.Equal(t, http.StatusForbidden, resp.Status, resp.Body)
	page := alice.get("/dashboard")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, "<h1>Hello alice</h1>", "still alice, not bob")
}
