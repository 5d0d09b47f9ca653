package stepup_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// The value Authsignal's rules judge must be the value the handler acts
// on, however the handler reads the request.
func TestAttributesAgreeWithWhatHandlersRead(t *testing.T) {
	form := []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}}}
	jsonPolicy := []stepup.Policy{{Method: http.MethodPost, Route: "/api/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromJSON, Key: "payment.amount", Type: "number"}}}}
	tests := []struct {
		name     string
		policies []stepup.Policy
		req      request
		expect   any // the amount the rules saw
		status   int
	}{
		{"form: an amount only in the query is seen, as r.FormValue sees it", form,
			request{http.MethodPost, "/pay/a?amount=5000", stepuptest.Form, "to=bob", nil}, 5000.0, http.StatusSeeOther},
		{"form: the body's amount wins in r.FormValue but not in r.URL.Query: refused", form,
			request{http.MethodPost, "/pay/a?amount=5000", stepuptest.Form, "amount=10", nil}, nil, http.StatusBadRequest},
		{"json: keys match case-insensitively, as encoding/json does", jsonPolicy,
			request{http.MethodPost, "/api/pay/a", "application/json", `{"Payment":{"AMOUNT":5000}}`, nil}, 5000.0, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newPolicyEnv(t, attributeApp, tc.policies)
			b := env.NewBrowser()
			b.Login("alice")
			if tc.status == http.StatusBadRequest {
				resp := b.Do(tc.req.method, tc.req.path, tc.req.contentType, tc.req.body, tc.req.header)
				assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
				assert.Empty(t, env.Emulator.Tracked())
				assert.Empty(t, env.Ledger.Runs(""))
				return
			}
			got, resp := trackOne(t, env, b, tc.req)
			assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
			assert.Equal(t, tc.expect, got.Custom["amount"])
		})
	}

	for _, body := range []string{
		`{"payment":{"amount":10,"AMOUNT":5000}}`,
		`{"payment":{"amount":10,"amount":5000}}`,
		`{"payment":{"amount":10},"Payment":{"amount":5000}}`,
	} {
		t.Run("json: a repeated key is refused before tracking: "+body, func(t *testing.T) {
			env := newPolicyEnv(t, attributeApp, jsonPolicy)
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/api/pay/a", "application/json", body, nil)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Empty(t, env.Emulator.Tracked())
			assert.Empty(t, env.Ledger.Runs(""))
		})
	}

	t.Run("the handler can read what the rules judged", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, form)
		b := env.NewBrowser()
		b.Login("alice")
		require.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/pay/a", stepuptest.Form, "amount=50", nil).StatusCode)
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/pay/a", stepuptest.Form, "amount=5000", nil)))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, map[string]any{"amount": 50.0}, runs[0].Attributes)
		assert.Equal(t, "allow", runs[0].How)
		assert.Equal(t, map[string]any{"amount": 5000.0}, runs[1].Attributes)
		assert.Equal(t, "challenge", runs[1].How)
	})
}
