package main

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// parkedForReview asserts the 303 to the guard's status page and returns it.
func parkedForReview(t *testing.T, resp response) string {
	t.Helper()
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	require.True(t, strings.HasPrefix(resp.Location, callbackPath+"?review="), resp.Location)
	return resp.Location
}

// staff opens the admin area (its step-up, remembered five minutes) in a
// browser of its own.
func staff(t *testing.T, tb *testBank) *user {
	t.Helper()
	admin := tb.newUser().login("alice")
	admin.get(tb.complete(tb.challenged(admin.get("/admin"))))
	return admin
}

func TestTransferOver50000WaitsForReview(t *testing.T) {
	for _, tc := range []struct {
		decision string
		status   int // of the customer's next look at the status page
		moved    int64
	}{
		{"approve", http.StatusSeeOther, 60_000_00},
		{"reject", http.StatusForbidden, 0},
	} {
		t.Run(tc.decision, func(t *testing.T) {
			tb := startBank(t)
			customer := tb.newUser().login("alice")
			before := customer.balance()
			status := parkedForReview(t, customer.post("/transfer", url.Values{"amount": {"60000"}, "to": {"bob"}}))
			wait := customer.get(status)
			require.Equal(t, http.StatusOK, wait.Status)
			assert.Contains(t, wait.Body, "Waiting for approval")
			assert.Equal(t, before, customer.balance(), "nothing moves before the review")

			admin := staff(t, tb)
			page := admin.get("/admin")
			require.Equal(t, http.StatusOK, page.Status, page.Body)
			key := strings.TrimPrefix(status, callbackPath+"?review=")
			assert.Contains(t, page.Body, `id="`+tc.decision+`-`+key+`"`, "the admin page lists it")
			settled := admin.post("/admin/reviews", url.Values{"decision": {tc.decision}, "user": {"alice"}, "action": {"transfer"}, "key": {key}})
			require.Equal(t, http.StatusSeeOther, settled.Status, settled.Body)
			assert.NotContains(t, admin.get("/admin").Body, `id="approve-`+key+`"`, "no longer waiting")

			tb.now.Advance(5 * time.Second) // the guard asks Authsignal at most every 5 s per review
			done := customer.get(status)
			require.Equal(t, tc.status, done.Status, done.Body)
			if tc.decision == "approve" {
				assert.Regexp(t, transferRef, done.Location, "the transfer's own page")
				assert.Contains(t, customer.get(done.Location).Body, "done after the bank&#39;s review")
			}
			assert.Equal(t, before-tc.moved, customer.balance())
			again := customer.get(status)
			assert.Equal(t, tc.status, again.Status, "a second look runs nothing")
			assert.Equal(t, before-tc.moved, customer.balance())
		})
	}
}

func TestSettlingReviewsIsForStaff(t *testing.T) {
	tb := startBank(t)
	bob := tb.newUser().login("bob")
	resp := bob.post("/admin/reviews", url.Values{"decision": {"approve"}, "user": {"bob"}, "action": {"transfer"}, "key": {"x"}})
	assert.Equal(t, http.StatusForbidden, resp.Status)
	admin := staff(t, tb)
	for _, form := range []url.Values{
		{"decision": {"maybe"}, "user": {"alice"}, "action": {"transfer"}, "key": {"x"}},
		{"decision": {"approve"}, "user": {"alice"}, "action": {"adminAccess"}, "key": {"x"}},
	} {
		assert.Equal(t, http.StatusBadRequest, admin.post("/admin/reviews", form).Status)
	}
}
