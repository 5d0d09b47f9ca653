package main

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/stepupkit/stepup"
)

// decision is one row of the admin page's table: one request the guard
// decided on, under its protected route. A challenge and what came of it
// (verified and run, or not completed) are one row: the guard's later
// events for it settle the row the challenge opened.
type decision struct {
	At      time.Time
	User    string
	Action  string
	Route   string // "POST /transfer": the protected route, never the callback's
	Outcome string // allowed, challenged, verified, signed in, refused, blocked, held, let through
	Reason  string // why, in the words of reasonText
	Open    bool   // challenged, not settled yet
}

// eventLog keeps the guard's last decisions for the admin page.
type eventLog struct {
	now   func() time.Time
	mu    sync.Mutex
	lines []decision
}

const maxEvents = 30

// add is the guard's Config.OnEvent.
func (l *eventLog) add(_ context.Context, ev stepup.Event) {
	outcome, reason := describe(ev)
	l.mu.Lock()
	defer l.mu.Unlock()
	rt, atCallback := route(ev), ev.Route == "callback" || ev.Path == callbackPath
	if settles(ev) {
		// The end of a challenge: it settles the row the challenge opened
		// (the latest open one of this user, action and, when the event
		// names it, route).
		if d := l.latest(ev, !atCallback, true); d != nil {
			d.Outcome, d.Reason, d.Open = outcome, reason, false
			return
		}
	}
	if ev.Type == stepup.EventAllow && ev.Reason == string(stepup.HowPass) {
		return // the page a verified GET opens: its row says "verified" already
	}
	if atCallback {
		// A refusal at the callback with no challenge open (a refresh of
		// one that ran): under the route of the user's last such request.
		if d := l.latest(ev, false, false); d != nil {
			rt = d.Route
		}
	}
	l.lines = append(l.lines, decision{At: l.now(), User: ev.UserID, Action: ev.Action, Route: rt,
		Outcome: outcome, Reason: reason, Open: ev.Type == stepup.EventChallenge})
	if len(l.lines) > maxEvents {
		l.lines = slices.Delete(l.lines, 0, len(l.lines)-maxEvents)
	}
}

// latest returns the newest row of ev's user and action: of ev's route
// too when sameRoute, and still open when open. The caller holds l.mu.
func (l *eventLog) latest(ev stepup.Event, sameRoute, open bool) *decision {
	rt := route(ev)
	for i := len(l.lines) - 1; i >= 0; i-- {
		d := &l.lines[i]
		if d.User == ev.UserID && d.Action == ev.Action && (!sameRoute || d.Route == rt) && (!open || d.Open) {
			return d
		}
	}
	return nil
}

// list returns the decisions, newest first.
func (l *eventLog) list() []decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.lines)
	slices.Reverse(out)
	return out
}

// settles reports whether ev ends a challenge: the callback's or the
// token's replay, the sign-in it completes, or its refusal at the callback.
func settles(ev stepup.Event) bool {
	switch ev.Type {
	case stepup.EventReplay, stepup.EventSignIn:
		return true
	case stepup.EventRefuse:
		return ev.Route == "callback" || ev.Path == callbackPath
	}
	return false
}

// route is the protected route an event is about: the policy's route with
// its method; the sign-in's form for a sign-in.
func route(ev stepup.Event) string {
	switch {
	case ev.Route == "sign-in" || ev.SignIn:
		return "POST /login"
	case ev.Route == "" || ev.Route == "callback":
		return ev.Method + " " + ev.Path
	}
	return ev.Method + " " + ev.Route
}

// describe writes an event in the table's one vocabulary: an outcome, and
// a reason a person reads without knowing the guard's event names.
func describe(ev stepup.Event) (outcome, reason string) {
	r := strings.TrimPrefix(ev.Reason, "sign-in: ")
	switch ev.Type {
	case stepup.EventAllow:
		return "allowed", reasonText(r)
	case stepup.EventChallenge:
		return "challenged", reasonText("challenge-" + r)
	case stepup.EventReplay:
		return "verified", reasonText("replay-" + r)
	case stepup.EventSignIn:
		return "signed in", reasonText("sign-in-" + r)
	case stepup.EventBlock:
		return "blocked", "the risk rules block it"
	case stepup.EventReview:
		return "held", "the risk rules ask for a review"
	case stepup.EventFailOpen:
		return "let through", "Authsignal did not answer; the policy fails open"
	}
	return "refused", reasonText(r)
}

// reasons is the table's vocabulary: the guard's reasons and refusal
// codes, and what they mean to the bank's staff.
var reasons = map[string]string{
	"allow":                       "the risk rules allow it",
	"remembered":                  "verified in the last five minutes",
	"pass":                        "verified just before",
	"unenrolled":                  "no second factor enrolled",
	"challenge-browser":           "the risk rules ask for a verification",
	"challenge-api":               "the risk rules ask for a verification (API)",
	"challenge-enroll-browser":    "a second factor must be set up first",
	"challenge-enroll-api":        "a second factor must be set up first (API)",
	"replay-callback":             "verified, then run once",
	"replay-token":                "verified, then run once (API token)",
	"replay-pass":                 "verified, then opened",
	"sign-in-challenge":           "verified on a new device",
	"sign-in-allow":               "a device seen before",
	"refresh: kept outcome shown": "a refresh: the result shown again, nothing run",
	"step_up_failed":              "verification not completed",
	"already_used":                "already run once",
	"expired":                     "the verification expired",
	"not_judged":                  "the request changed after it was judged",
	"login_required":              "not logged in",
	"too_many_challenges":         "too many challenges",
	"busy":                        "the same request is already running",
	"provider_unavailable":        "Authsignal did not answer",
	"misconfigured":               "the guard is not wired correctly",
	"replay_not_reached":          "verified, but the request was refused before the guard",
	"bad_request":                 "a request the guard cannot read",
	"body_too_large":              "a request too large to hold",
	"unsupported_body":            "a body that cannot be held",
	"internal_error":              "an internal error",
}

func reasonText(r string) string {
	if t, ok := reasons[r]; ok {
		return t
	}
	if r == "" {
		return "—"
	}
	return strings.ReplaceAll(strings.TrimPrefix(r, "replay-"), "_", " ")
}
