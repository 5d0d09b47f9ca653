package main

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// A transfer that cannot run is refused before the guard: the customer is
// never challenged for it, and Authsignal never hears of it.
func TestTransferIsCheckedBeforeTheChallenge(t *testing.T) {
	for _, tc := range []struct {
		name   string
		given  url.Values
		expect string
	}{
		{"more than the balance", url.Values{"amount": {"5000"}, "to": {"alice"}}, "Nothing was sent: insufficient funds."},
		{"an unknown payee", url.Values{"amount": {"2000"}, "to": {"mallory"}}, "the bank has no account for that payee"},
		{"an amount that does not parse", url.Values{"amount": {"2,000"}, "to": {"alice"}}, "enter an amount such as 250"},
		{"to oneself", url.Values{"amount": {"2000"}, "to": {"bob"}}, "you cannot send money to yourself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBank(t)
			bob := tb.newUser().login("bob") // 2,500.00
			before := bob.balance()

			resp := bob.post("/transfer", tc.given)
			assert.Equal(t, http.StatusUnprocessableEntity, resp.Status)
			assert.Empty(t, resp.Location, "no challenge")
			assert.Contains(t, resp.Body, tc.expect)
			assert.Contains(t, resp.Body, `value="`+tc.given.Get("amount")+`"`, "the form is answered again, filled in")
			assert.Empty(t, tb.tracked(), "nothing tracked")
			assert.Equal(t, before, bob.balance())
		})
	}

	t.Run("through the API", func(t *testing.T) {
		tb := startBank(t)
		bob := tb.newUser().login("bob")
		resp := bob.api(`{"amount": 5000, "to": "alice"}`, "")
		assert.Equal(t, http.StatusUnprocessableEntity, resp.Status, resp.Body)
		assert.Empty(t, resp.Header.Get("WWW-Authenticate"), "no challenge")
		assert.Contains(t, resp.Body, `"error":"insufficient_funds"`)
		assert.Empty(t, tb.tracked())
	})

	t.Run("a transfer that can run is challenged, by account number too", func(t *testing.T) {
		tb := startBank(t)
		alice := tb.newUser().login("alice")
		bob := tb.newUser().login("bob")
		aliceBefore, bobBefore := alice.balance(), bob.balance()
		resp := alice.get(tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"2000"}, "to": {"de42 1001 0010 0000 0678 90"}}))))
		require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
		assert.Equal(t, aliceBefore-2000_00, alice.balance())
		assert.Equal(t, bobBefore+2000_00, bob.balance())
		require.Len(t, tb.tracked(), 1)
		assert.Equal(t, 2000.0, tb.tracked()[0].Custom["amount"])
		assert.Equal(t, "de42 1001 0010 0000 0678 90", tb.tracked()[0].Custom["to"], "the rules see the payee as typed")
	})

	t.Run("the balance is checked again when the transfer runs", func(t *testing.T) {
		tb := startBank(t)
		alice := tb.newUser().login("alice") // 100,000.00; over 50,000.00 a transfer waits for review
		challenge := tb.challenged(alice.post("/transfer", url.Values{"amount": {"40000"}, "to": {"bob"}}))
		second := tb.challenged(alice.post("/transfer", url.Values{"amount": {"40000"}, "to": {"bob"}}))
		third := tb.challenged(alice.post("/transfer", url.Values{"amount": {"40000"}, "to": {"bob"}}))
		require.Equal(t, http.StatusSeeOther, alice.get(tb.complete(second)).Status)
		require.Equal(t, http.StatusSeeOther, alice.get(tb.complete(third)).Status)
		before := alice.balance()
		resp := alice.get(tb.complete(challenge))
		assert.GreaterOrEqual(t, resp.Status, 400, "the first one can no longer run")
		assert.Equal(t, before, alice.balance(), "never below zero")
	})
}
