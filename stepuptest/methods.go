package stepuptest

import (
	"context"
	"encoding/json"
	"errors"
	"html"
	"net/http"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// methodsEnv is an Env where the transfers (browser and API) accept only
// an email code and show amount and payee to the user, and where GET
// /report is a second route of the action "admin" that demands an email
// code, beside GET /admin which accepts any method. Its emulator enrols
// alice with an email code and sam with a text message only, so the
// emulator's page verifies sam by SMS.
func methodsEnv(t *testing.T, a Adapter, more func(*stepup.Config)) *Env {
	t.Helper()
	return NewEnv(t, a, Options{
		Emulator: func(c *emulator.Config) {
			c.AutoEnroll = false
			c.Users = []emulator.User{
				{ID: "alice", Email: "alice@example.com", Methods: []string{emulator.MethodEmailOTP}},
				{ID: "sam", PhoneNumber: "+64270000001", Methods: []string{emulator.MethodSMS}},
			}
		},
		Config: func(c *stepup.Config) {
			for i := range c.Policies {
				p := &c.Policies[i]
				switch p.Route {
				case "/transfer":
					p.Methods = []string{stepup.MethodEmailOTP}
					p.Attributes[0].Display = true
					p.Attributes = append(p.Attributes, stepup.Attribute{Name: "to", From: stepup.FromForm, Key: "to", Display: true})
				case "/api/transfer":
					p.Methods = []string{stepup.MethodEmailOTP}
					p.Attributes[0].Display = true
					p.Attributes = append(p.Attributes, stepup.Attribute{Name: "to", From: stepup.FromJSON, Key: "to", Display: true})
				case "/report":
					p.Action, p.Remember, p.Methods = "admin", 5*time.Minute, []string{stepup.MethodEmailOTP}
				}
			}
			if more != nil {
				more(c)
			}
		},
	})
}

// apiChallenge sends the API transfer body and returns the 401's JSON.
func apiChallenge(t *testing.T, b *Browser, body string) map[string]any {
	t.Helper()
	resp := b.API(http.MethodPost, "/api/transfer", body, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
	var doc map[string]any
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
	return doc
}

// runMethods: the user approves what runs, with the method the action
// demands (SECURITY.md, threats 27 to 29).
func runMethods(t *testing.T, a Adapter) {
	t.Run("wrong method at the callback: 403 naming both, nothing runs, nothing spent", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("sam")
		callback := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=bob", nil)))
		for range 2 { // the park stays pending: the same answer again, never "already used"
			resp := b.Get(callback)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			body := html.UnescapeString(resp.Body)
			assert.Contains(t, body, "You verified with a text message code")
			assert.Contains(t, body, "accepts only an email code")
			err := env.Events.LastRefusal()
			assert.True(t, errors.Is(err, stepup.ErrWrongMethod), "%v", err)
			assert.False(t, errors.Is(err, stepup.ErrStepUpFailed), "not a failed proof: the park is kept")
		}
		assert.Empty(t, env.Ledger.Runs("transfer"))
		assert.Empty(t, env.Events.Of(stepup.EventReplay))
	})
	t.Run("wrong method for a parked GET: no pass, nothing runs", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("sam")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/report"))))
		require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, resp.Header.Get("Location"), "no pass")
		assert.True(t, errors.Is(env.Events.LastRefusal(), stepup.ErrWrongMethod), "%v", env.Events.LastRefusal())
		b.Challenge(b.Get("/report"))
		assert.Empty(t, env.Ledger.Runs("report"))
	})
	t.Run("a policy changed between park and proof: both the parked and the live Methods must accept", func(t *testing.T) {
		env := methodsEnv(t, a, nil) // transfers demand an email code
		loose := env.Instance(a, Options{Config: func(c *stepup.Config) {
			for i := range c.Policies {
				c.Policies[i].Methods = nil
			}
		}})
		b := env.NewBrowser()
		b.Login("sam")
		form := "amount=5000&to=bob"

		// Parked where an email code was demanded, proved by SMS, redeemed
		// where any method would do: the parked demand holds.
		callback := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, form, nil)))
		resp := b.Get(OnInstance(callback, loose))
		require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Contains(t, html.UnescapeString(resp.Body), "accepts only an email code")

		// Parked where any method would do, redeemed where an email code
		// is demanded: the live demand holds, at the replay and at the retry.
		complete := func(challenge string) string { // the loose instance's callback
			u, err := env.Emulator.CompleteChallenge(context.Background(), challenge)
			require.NoError(t, err)
			return u.String()
		}
		callback = complete(b.Challenge(b.Do(http.MethodPost, loose.URL+"/transfer", Form, form, nil)))
		resp = b.Get(OnInstance(callback, env.Server))
		require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.True(t, errors.Is(env.Events.LastRefusal(), stepup.ErrWrongMethod), "%v", env.Events.LastRefusal())

		body := `{"amount": 5000, "to": "bob"}`
		api := b.API(http.MethodPost, loose.URL+"/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, api.StatusCode, api.Body)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(api.Body), &doc))
		token := Param(complete(doc["url"].(string)), "token")
		retry := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusForbidden, retry.StatusCode, retry.Body)
		assert.Contains(t, retry.Body, "wrong_method")

		assert.Empty(t, env.Ledger.Runs("transfer"))
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
	t.Run("accepted method at the callback: runs once", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=bob", nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "challenge", runs[0].How)
	})
	t.Run("wrong method at the API retry: 403 JSON naming both, nothing runs, nothing spent", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("sam")
		body := `{"amount": 5000, "to": "bob"}`
		doc := apiChallenge(t, b, body)
		token := Param(b.Complete(doc["url"].(string)), "token")
		require.NotEmpty(t, token)
		for range 2 {
			resp := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
			require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			var refusal map[string]string
			require.NoError(t, json.Unmarshal([]byte(resp.Body), &refusal))
			assert.Equal(t, "wrong_method", refusal["error"])
			assert.Contains(t, refusal["message"], "a text message code")
			assert.Contains(t, refusal["message"], "an email code")
		}
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
	t.Run("accepted method at the API retry: runs once", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("alice")
		body := `{"amount": 5000, "to": "bob"}`
		token := Param(b.Complete(apiChallenge(t, b, body)["url"].(string)), "token")
		resp := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("apiTransfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "token", runs[0].How)
	})
	t.Run("the 401 shows what the user approves, typed, and the methods accepted", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("alice")
		doc := apiChallenge(t, b, `{"amount": 5000, "to": "bob"}`)
		assert.Equal(t, map[string]any{"amount": float64(5000), "to": "bob"}, doc["display"])
		assert.Equal(t, []any{stepup.MethodEmailOTP}, doc["methods"])
		tracked := env.Emulator.Tracked()
		require.NotEmpty(t, tracked)
		assert.Equal(t, map[string]any{"amount": float64(5000), "to": "bob"}, tracked[len(tracked)-1].Request.Custom,
			"what is shown is what Authsignal judged")

		plain := NewEnv(t, a, Options{}) // no displayed attribute, no methods: neither key
		pb := plain.NewBrowser()
		pb.Login("alice")
		doc = apiChallenge(t, pb, `{"amount": 5000, "to": "bob"}`)
		assert.NotContains(t, doc, "display")
		assert.NotContains(t, doc, "methods")
	})
	t.Run("a grant earned with one method opens no route that demands another", func(t *testing.T) {
		env := methodsEnv(t, a, nil)
		b := env.NewBrowser()
		b.Login("sam")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/admin")))) // any method: SMS will do
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode)
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant (earned by SMS) opens /admin")
		assert.Equal(t, "remembered", env.Ledger.Runs("admin")[1].How)

		b.Challenge(b.Get("/report")) // same action, email code only: the grant does not open it
		assert.Empty(t, env.Ledger.Runs("report"))

		alice := env.NewBrowser()
		alice.Login("alice")
		require.Equal(t, http.StatusSeeOther, alice.Get(alice.Complete(alice.Challenge(alice.Get("/report")))).StatusCode)
		require.Equal(t, http.StatusOK, alice.Get("/report").StatusCode)
		require.Equal(t, http.StatusOK, alice.Get("/admin").StatusCode, "a grant earned by email code opens both")
		require.Equal(t, http.StatusOK, alice.Get("/report").StatusCode)
		runs := env.Ledger.Runs("report")
		require.Len(t, runs, 2)
		assert.Equal(t, "remembered", runs[1].How)
	})
	t.Run("confirmation page: shows what the user approves, escaped, and links to the challenge", func(t *testing.T) {
		env := methodsEnv(t, a, func(c *stepup.Config) { c.ConfirmPage = stepup.ConfirmTemplate() })
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000&to=%3Cb%3Ebob%3C%2Fb%3E", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Contains(t, resp.Body, "<dd>5000</dd>")
		assert.Contains(t, resp.Body, "<dd>&lt;b&gt;bob&lt;/b&gt;</dd>", "a value the user sent is escaped")
		assert.NotContains(t, resp.Body, "<b>bob")
		assert.Equal(t, "DENY", resp.Header.Get("X-Frame-Options"))
		assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'")
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))
		m := regexp.MustCompile(`id="stepup-continue" href="([^"]*)"`).FindStringSubmatch(resp.Body)
		require.NotNil(t, m, resp.Body)
		challenge := html.UnescapeString(m[1])
		require.Regexp(t, "^"+regexp.QuoteMeta(env.Emulator.URL)+"/", challenge)
		assert.Empty(t, env.Ledger.Runs("transfer"), "nothing runs before the challenge")

		done := b.Get(b.Complete(challenge))
		require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=5000&to=%3Cb%3Ebob%3C%2Fb%3E", string(runs[0].Body))

		// A challenge that displays nothing goes straight to the challenge.
		b.Challenge(b.Do(http.MethodPut, "/profile", "", "", nil))
	})
}
