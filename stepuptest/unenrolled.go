package stepuptest

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// unenrolledEnv is an Env whose emulator enrols alice only: any other user
// has no authenticator, and Authsignal answers ALLOW with isEnrolled false
// for them. Every policy has Unenrolled set to choice ("" keeps the
// default).
func unenrolledEnv(t *testing.T, a Adapter, choice string) *Env {
	t.Helper()
	return NewEnv(t, a, Options{
		Emulator: func(c *emulator.Config) {
			c.AutoEnroll = false
			c.Users = []emulator.User{{ID: "alice", Email: "alice@example.com"}}
		},
		Config: func(c *stepup.Config) {
			for i := range c.Policies {
				c.Policies[i].Unenrolled = choice
			}
		},
	})
}

// runUnenrolled: Authsignal's ALLOW for a user with no second factor is
// never a silent pass (threat 22). Policy.Unenrolled decides: deny (the
// default), enroll (a challenge that enrols, then the request runs once)
// or allow (explicit, reported).
func runUnenrolled(t *testing.T, a Adapter) {
	for _, choice := range []string{"", stepup.UnenrolledDeny} {
		name := "deny"
		if choice == "" {
			name = "default is deny"
		}
		t.Run(name+": browser gets a 403 that says to set up two-step verification", func(t *testing.T) {
			env := unenrolledEnv(t, a, choice)
			b := env.NewBrowser()
			b.Login("newbie")
			for i, body := range []string{"amount=50&to=bob", "amount=5000&to=bob"} {
				resp := b.Do(http.MethodPost, "/transfer", Form, body, nil)
				require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
				assert.Contains(t, resp.Body, "two-step verification")
				tracked := env.Emulator.Tracked()
				require.Len(t, tracked, i+1)
				assert.Equal(t, emulator.StateAllow, tracked[i].State, "Authsignal allowed: the user has no factor to be challenged with")
			}
			assert.Empty(t, env.Ledger.Runs("transfer"))
			assert.Empty(t, env.Events.Of(stepup.EventChallenge), "nothing parked")
			assert.Empty(t, env.Events.Of(stepup.EventAllow))
			refused := env.Events.Of(stepup.EventRefuse)
			require.Len(t, refused, 2)
			assert.Equal(t, "unenrolled", refused[1].Reason)
			assert.True(t, errors.Is(refused[1].Err, stepup.ErrUnenrolled), "%v", refused[1].Err)
			assert.Equal(t, "newbie", refused[1].UserID)
		})
		t.Run(name+": API gets a 403 JSON refusal", func(t *testing.T) {
			env := unenrolledEnv(t, a, choice)
			b := env.NewBrowser()
			b.Login("newbie")
			resp := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000, "to": "bob"}`, nil)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			var doc map[string]any
			require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
			assert.Equal(t, "unenrolled", doc["error"])
			assert.Contains(t, doc["message"], "two-step verification")
			assert.Empty(t, resp.Header.Get("WWW-Authenticate"), "no challenge to complete")
			assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		})
	}

	t.Run("enroll: browser enrols, then the parked request runs once", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledEnroll)
		b := env.NewBrowser()
		b.Login("newbie")
		body := "amount=5000&to=bob"
		challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", Form, body, nil))
		assert.Empty(t, env.Ledger.Runs("transfer"), "nothing runs before the enrolment")
		opened := env.Events.Of(stepup.EventChallenge)
		require.Len(t, opened, 1)
		assert.Equal(t, "enroll-browser", opened[0].Reason)

		callback := b.Complete(challenge) // the page enrols an email OTP, then verifies it
		resp := b.Get(callback)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body))
		assert.Equal(t, "challenge", runs[0].How)
		assert.Equal(t, "newbie", runs[0].User)

		again := b.Get(callback)
		assert.Equal(t, resp.Body, again.Body, "a refresh shows the kept outcome")
		assert.Len(t, env.Ledger.Runs("transfer"), 1, "and runs nothing again")

		// Enrolled now: the rules apply as to anyone.
		b.Challenge(b.Do(http.MethodPost, "/transfer", Form, body, nil))
		small := b.Do(http.MethodPost, "/transfer", Form, "amount=50", nil)
		require.Equal(t, http.StatusOK, small.StatusCode, small.Body)
		runs = env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, "allow", runs[1].How)
	})
	t.Run("enroll: an enrolment left unfinished runs nothing", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledEnroll)
		b := env.NewBrowser()
		b.Login("newbie")
		challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
		resp := b.Get(b.Cancel(challenge))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("enroll: a GET resumes with a pass, and the enrolment earns the Remember grant", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledEnroll)
		b := env.NewBrowser()
		b.Login("newbie")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		require.Equal(t, "/admin", resp.Header.Get("Location"))
		got := b.Get("/admin")
		require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
		tracked := len(env.Emulator.Tracked())
		got = b.Get("/admin")
		require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
		runs := env.Ledger.Runs("admin")
		require.Len(t, runs, 2)
		assert.Equal(t, "pass", runs[0].How)
		assert.Equal(t, "remembered", runs[1].How)
		assert.Len(t, env.Emulator.Tracked(), tracked, "not tracked again")
	})
	t.Run("enroll: API gets the 401 challenge, the token retry runs once", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledEnroll)
		b := env.NewBrowser()
		b.Login("newbie")
		body := `{"amount": 5000, "to": "bob"}`
		resp := b.API(http.MethodPost, "/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		challenge, _ := doc["url"].(string)
		opened := env.Events.Of(stepup.EventChallenge)
		require.Len(t, opened, 1)
		assert.Equal(t, "enroll-api", opened[0].Reason)

		token := Param(b.Complete(challenge), "token")
		got := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
		runs := env.Ledger.Runs("apiTransfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "token", runs[0].How)
		again := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusConflict, again.StatusCode)
		assert.Len(t, env.Ledger.Runs("apiTransfer"), 1)
	})

	t.Run("allow: browser and API run, reported with reason unenrolled", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledAllow)
		b := env.NewBrowser()
		b.Login("newbie")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=bob", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		api := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, nil)
		require.Equal(t, http.StatusOK, api.StatusCode, api.Body)
		for _, name := range []string{"transfer", "apiTransfer"} {
			runs := env.Ledger.Runs(name)
			require.Len(t, runs, 1)
			assert.Equal(t, string(stepup.HowUnenrolled), runs[0].How)
		}
		allowed := env.Events.Of(stepup.EventAllow)
		require.Len(t, allowed, 2)
		for _, ev := range allowed {
			assert.Equal(t, "unenrolled", ev.Reason)
			assert.Equal(t, "newbie", ev.UserID)
		}
		assert.Empty(t, env.Events.Of(stepup.EventChallenge))
	})
	t.Run("allow: no Remember grant, every visit asks Authsignal", func(t *testing.T) {
		env := unenrolledEnv(t, a, stepup.UnenrolledAllow)
		b := env.NewBrowser()
		b.Login("newbie")
		for i := 1; i <= 2; i++ {
			resp := b.Get("/admin")
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Len(t, env.Emulator.Tracked(), i, "tracked again: no grant")
		}
		runs := env.Ledger.Runs("admin")
		require.Len(t, runs, 2)
		assert.Equal(t, string(stepup.HowUnenrolled), runs[1].How)
	})

	t.Run("an enrolled user's ALLOW is unchanged by every choice", func(t *testing.T) {
		for _, choice := range []string{"", stepup.UnenrolledDeny, stepup.UnenrolledEnroll, stepup.UnenrolledAllow} {
			env := unenrolledEnv(t, a, choice)
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/transfer", Form, "amount=50", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode, "%q: %s", choice, resp.Body)
			api := b.API(http.MethodPost, "/api/transfer", `{"amount": 50}`, nil)
			require.Equal(t, http.StatusOK, api.StatusCode, "%q: %s", choice, api.Body)
			for _, name := range []string{"transfer", "apiTransfer"} {
				runs := env.Ledger.Runs(name)
				require.Len(t, runs, 1)
				assert.Equal(t, "allow", runs[0].How, choice)
			}
			b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
			assert.Empty(t, env.Events.Of(stepup.EventRefuse), choice)
		}
	})
}
