package main

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

func TestDecisionTable(t *testing.T) {
	at := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	transfer := stepup.Event{Action: "transfer", UserID: "alice", Method: http.MethodPost, Route: "/transfer", Path: "/transfer"}
	atCallback := func(ev stepup.Event) stepup.Event {
		ev.Method, ev.Route, ev.Path = http.MethodGet, "callback", callbackPath
		return ev
	}
	with := func(ev stepup.Event, typ stepup.EventType, reason string) stepup.Event {
		ev.Type, ev.Reason = typ, reason
		return ev
	}
	api := stepup.Event{Action: "transfer", UserID: "alice", Method: http.MethodPost, Route: "/api/transfer", Path: "/api/transfer"}
	admin := stepup.Event{Action: "adminAccess", UserID: "alice", Method: http.MethodGet, Route: "/admin", Path: "/admin"}
	signIn := stepup.Event{Action: "signIn", UserID: "bob", Method: http.MethodPost, Route: "sign-in", Path: "/login", SignIn: true}

	for _, tc := range []struct {
		name   string
		given  []stepup.Event
		expect []decision
	}{
		{"allowed", []stepup.Event{with(transfer, stepup.EventAllow, "allow")},
			[]decision{{Route: "POST /transfer", Outcome: "allowed", Reason: "the risk rules allow it"}}},
		{"a challenge and its replay are one row, under the protected route", []stepup.Event{
			with(transfer, stepup.EventChallenge, "browser"),
			with(transfer, stepup.EventReplay, "callback"),
		}, []decision{{Route: "POST /transfer", Outcome: "verified", Reason: "verified, then run once"}}},
		{"a challenge not completed", []stepup.Event{
			with(transfer, stepup.EventChallenge, "browser"),
			with(atCallback(transfer), stepup.EventRefuse, "step_up_failed"),
		}, []decision{{Route: "POST /transfer", Outcome: "refused", Reason: "verification not completed"}}},
		{"each challenge is settled by its own route's replay", []stepup.Event{
			with(transfer, stepup.EventChallenge, "browser"),
			with(api, stepup.EventChallenge, "api"),
			with(transfer, stepup.EventReplay, "callback"),
		}, []decision{
			{Route: "POST /api/transfer", Outcome: "challenged", Reason: "the risk rules ask for a verification (API)", Open: true},
			{Route: "POST /transfer", Outcome: "verified", Reason: "verified, then run once"},
		}},
		{"a refresh of a callback that ran: under the protected route", []stepup.Event{
			with(transfer, stepup.EventChallenge, "browser"),
			with(transfer, stepup.EventReplay, "callback"),
			with(atCallback(transfer), stepup.EventRefuse, "refresh: kept outcome shown"),
		}, []decision{
			{Route: "POST /transfer", Outcome: "refused", Reason: "a refresh: the result shown again, nothing run"},
			{Route: "POST /transfer", Outcome: "verified", Reason: "verified, then run once"},
		}},
		{"a challenge still open", []stepup.Event{with(transfer, stepup.EventChallenge, "api")},
			[]decision{{Route: "POST /transfer", Outcome: "challenged", Reason: "the risk rules ask for a verification (API)", Open: true}}},
		{"a GET resumed by a pass: the page it opens adds no row", []stepup.Event{
			with(admin, stepup.EventChallenge, "browser"),
			with(atCallback(admin), stepup.EventReplay, "pass"),
			with(admin, stepup.EventAllow, "pass"),
			with(admin, stepup.EventAllow, "remembered"),
		}, []decision{
			{Route: "GET /admin", Outcome: "allowed", Reason: "verified in the last five minutes"},
			{Route: "GET /admin", Outcome: "verified", Reason: "verified, then opened"},
		}},
		{"a sign-in", []stepup.Event{
			with(signIn, stepup.EventChallenge, "sign-in: browser"),
			with(atCallback(signIn), stepup.EventSignIn, "sign-in: challenge"),
		}, []decision{{Route: "POST /login", Outcome: "signed in", Reason: "verified on a new device"}}},
		{"a refusal before any challenge", []stepup.Event{
			func() stepup.Event {
				ev := with(transfer, stepup.EventRefuse, "too_many_challenges")
				ev.Err = errors.New("cap")
				return ev
			}(),
		}, []decision{{Route: "POST /transfer", Outcome: "refused", Reason: "too many challenges"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := &eventLog{now: func() time.Time { return at }}
			for _, ev := range tc.given {
				l.add(t.Context(), ev)
			}
			got := l.list()
			require.Len(t, got, len(tc.expect))
			for i, want := range tc.expect {
				want.At, want.User, want.Action = at, tc.given[0].UserID, tc.given[0].Action
				assert.Equal(t, want, got[i])
			}
		})
	}
}

// Every reason the guard gives reads in the table's vocabulary.
func TestDecisionReasonsAreWords(t *testing.T) {
	for _, r := range []string{"allow", "remembered", "challenge-browser", "replay-callback", "replay-token",
		"sign-in-allow", "step_up_failed", "already_used", "login_required", "too_many_challenges"} {
		assert.NotContains(t, reasonText(r), "_", r)
		assert.NotEqual(t, r, reasonText(r), r)
	}
}

func TestAdminSeesOneRowPerDecision(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	alice.post("/transfer", url.Values{"amount": {"50"}, "to": {"bob"}})
	alice.get(tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"5000"}, "to": {"bob"}}))))
	alice.get(tb.complete(tb.challenged(alice.get("/admin"))))
	page := alice.get("/admin")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, "<code>POST /transfer</code></td><td>transfer</td><td class=\"decision\">verified</td><td>verified, then run once</td>")
	assert.Contains(t, page.Body, "<code>POST /transfer</code></td><td>transfer</td><td class=\"decision\">allowed</td><td>the risk rules allow it</td>")
	assert.Contains(t, page.Body, "<code>GET /admin</code></td><td>adminAccess</td><td class=\"decision\">verified</td>")
	assert.Contains(t, page.Body, "<code>POST /login</code></td><td>signIn</td><td class=\"decision\">signed in</td>")
	assert.NotContains(t, page.Body, "/stepup/callback", "the callback is no protected route")
	assert.Contains(t, page.Body, "DE42 1001 0010 0000 0678 90", "the accounts' numbers")
}
