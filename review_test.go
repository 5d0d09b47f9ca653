package stepup_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/stepuptest"
)

// reviewReport holds GET /report (action "report") for review too.
func reviewReport(t *testing.T, o stepuptest.Options) *stepuptest.Env {
	t.Helper()
	config := o.Config
	o.Config = func(c *stepup.Config) {
		for i := range c.Policies {
			if c.Policies[i].Action == "report" {
				c.Policies[i].Review = time.Hour
			}
		}
		if config != nil {
			config(c)
		}
	}
	o.Emulator = func(c *emulator.Config) {
		rules, err := emulator.ParseRules([]byte(strings.Replace(stepuptest.Rules, "  blocked: {default: BLOCK}",
			"  blocked: {default: BLOCK}\n  report: {default: REVIEW}", 1)))
		require.NoError(t, err)
		c.Rules = rules
	}
	return stepuptest.NewEnv(t, reviewApp, o)
}

func TestReviewOfAGetEndsAtItsOwnURL(t *testing.T) {
	env := reviewReport(t, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Get("/report?month=11"))
	env.Settle("alice", "report", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)

	resumed := b.Get(status)
	require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
	assert.Equal(t, "/report?month=11", resumed.Header.Get("Location"))
	assert.Empty(t, env.Ledger.Runs("report"), "the GET runs at its own URL, not at the status URL")
	page := b.Get(resumed.Header.Get("Location"))
	require.Equal(t, http.StatusOK, page.StatusCode, page.Body)
	runs := env.Ledger.Runs("report")
	require.Len(t, runs, 1)
	assert.Equal(t, "pass", runs[0].How)

	again := b.Get(status)
	assert.Equal(t, http.StatusSeeOther, again.StatusCode, "the kept answer: the same redirect")
	assert.Equal(t, "/report?month=11", again.Header.Get("Location"))
	assert.Equal(t, http.StatusSeeOther, b.Get("/report?month=11").StatusCode, "the pass was single-use: a new review")
	assert.Len(t, env.Ledger.Runs("report"), 1)
}

func TestReviewOfAHeadEndsAtItsOwnURL(t *testing.T) {
	env := reviewReport(t, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodHead, "/report", "", "", nil))
	env.Settle("alice", "report", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	resumed := b.Get(status)
	require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
	assert.Equal(t, "/report", resumed.Header.Get("Location"))
	assert.Empty(t, env.Ledger.Runs("report"))
}

func TestReviewOfAnAPIGetIsReplayed(t *testing.T) {
	env := reviewReport(t, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.API(http.MethodGet, "/report", "", nil)
	require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.Body)
	loc := resp.Header.Get("Location")
	env.Settle("alice", "report", stepuptest.ReviewID(loc), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	ran := b.API(http.MethodGet, loc, "", nil)
	require.Equal(t, http.StatusOK, ran.StatusCode, ran.Body)
	assert.Equal(t, "done: report GET /report ", ran.Body)
	runs := env.Ledger.Runs("report")
	require.Len(t, runs, 1)
	assert.Equal(t, "review", runs[0].How)
}

func TestReviewAPIClientsBearerIsTheLiveOne(t *testing.T) {
	// The replay carries the polling request's Authorization (the client's
	// own credentials), never the parked one's.
	env := newReviewEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.API(http.MethodPost, "/review", `{"x":1}`, http.Header{"Authorization": {"Bearer parked"}})
	require.Equal(t, http.StatusAccepted, resp.StatusCode)
	loc := resp.Header.Get("Location")
	env.Settle("alice", "wire", stepuptest.ReviewID(loc), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	require.Equal(t, http.StatusOK, b.API(http.MethodGet, loc, "", http.Header{"Authorization": {"Bearer live"}}).StatusCode)
	runs := env.Ledger.Runs("review")
	require.Len(t, runs, 1)
	assert.Equal(t, []string{"Bearer live"}, runs[0].Header.Values("Authorization"))
}

func TestReviewPollIsRateLimitedPerPark(t *testing.T) {
	var getter *countingGetter
	env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider { getter = &countingGetter{Provider: p}; return getter },
		func(c *stepup.Config) { c.ReviewPoll = 30 * time.Second })
	b := env.NewBrowser()
	b.Login("alice")
	first := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	second := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil))
	for range 5 {
		b.Get(first)
	}
	assert.EqualValues(t, 1, getter.calls.Load(), "one call per ReviewPoll for a park")
	b.Get(second)
	assert.EqualValues(t, 2, getter.calls.Load(), "each park has its own allowance")
	env.Clock.Advance(30*time.Second - time.Millisecond)
	b.Get(first)
	assert.EqualValues(t, 2, getter.calls.Load(), "not before ReviewPoll has passed")
	env.Clock.Advance(time.Millisecond)
	wait := b.Get(first)
	assert.EqualValues(t, 3, getter.calls.Load())
	assert.Contains(t, wait.Body, `content="30"`, "the page refreshes every ReviewPoll")
}

func TestPendingReviewsAreCapped(t *testing.T) {
	env := newReviewEnv(t, nil, func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 2, 2 })
	b := env.NewBrowser()
	b.Login("alice")
	first := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil))
	over := b.Do(http.MethodPost, "/review", stepuptest.Form, "x=3", nil)
	require.Equal(t, http.StatusTooManyRequests, over.StatusCode, over.Body)
	assert.NotEmpty(t, over.Header.Get("Retry-After"))
	assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrTooManyChallenges)

	// A review that ran gives its place back.
	env.Settle("alice", "wire", stepuptest.ReviewID(first), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	require.Equal(t, http.StatusOK, b.Get(first).StatusCode)
	b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=3", nil))
	assert.Equal(t, http.StatusTooManyRequests, b.Do(http.MethodPost, "/review", stepuptest.Form, "x=4", nil).StatusCode)

	// So does one that was rejected, and one that expired.
	env2 := newReviewEnv(t, nil, func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 1, 1 })
	b2 := env2.NewBrowser()
	b2.Login("alice")
	s := b2.Parked(b2.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	env2.Settle("alice", "wire", stepuptest.ReviewID(s), authsignal.StateReviewFailed)
	require.Equal(t, http.StatusForbidden, b2.Get(s).StatusCode)
	b2.Parked(b2.Do(http.MethodPost, "/review", stepuptest.Form, "x=2", nil))
	env2.Clock.Advance(stepuptest.ReviewFor)
	b2.Parked(b2.Do(http.MethodPost, "/review", stepuptest.Form, "x=3", nil))
}

func TestReviewBoundToTheAppSession(t *testing.T) {
	// With Config.SessionID the review belongs to the application's login
	// session: a new login of the same browser is another session.
	env := stepuptest.NewEnv(t, reviewApp, stepuptest.Options{SessionID: true, Config: stepuptest.ReviewConfig})
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	env.Settle("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	b.Login("alice") // a new login session, same guard cookie
	assert.Equal(t, http.StatusForbidden, b.Get(status).StatusCode)
	assert.Empty(t, env.Ledger.Runs("review"))
}

func TestReviewStatusURLRefusals(t *testing.T) {
	env := newReviewEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil))
	tracked := env.Emulator.Tracked()
	parkID := tracked[len(tracked)-1].IdempotencyKey // the challenge's park
	tests := []struct {
		name, query string
		status      int
	}{
		{"malformed id", "review=abc", http.StatusBadRequest},
		{"unknown id", "review=AAAAAAAAAAAAAAAAAAAAAA", http.StatusGone},
		{"a challenge's park is no review", "review=" + parkID, http.StatusForbidden},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := b.Get(stepuptest.CallbackPath + "?" + tc.query)
			assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		})
	}
	assert.Empty(t, env.Ledger.Runs("transfer"))
}

func TestReviewZeroKeepsTheRefusal(t *testing.T) {
	env := stepuptest.NewEnv(t, reviewApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.ErrorIs(t, env.Events.Of(stepup.EventReview)[0].Err, stepup.ErrReview)
}

func TestReviewConfiguration(t *testing.T) {
	c := validConfig()
	c.ReviewPoll = -time.Second
	_, err := stepup.New(c)
	assert.ErrorContains(t, err, "ReviewPoll")

	c = validConfig()
	c.Policies = []stepup.Policy{{Method: http.MethodPost, Route: "/x", Action: "x", Review: -time.Hour}}
	_, err = stepup.New(c)
	assert.ErrorContains(t, err, "negative review")

	g, err := stepup.New(validConfig())
	require.NoError(t, err)
	rl, err := g.NewRule("wire", stepup.WithReview(24*time.Hour))
	require.NoError(t, err)
	assert.Equal(t, 24*time.Hour, rl.Policy().Review)
}

// stateGetter answers every get action with state (or err).
type stateGetter struct {
	stepup.Provider
	state authsignal.State
	err   error
}

func (s *stateGetter) GetAction(context.Context, string, string, string) (*authsignal.Action, error) {
	if s.err != nil {
		return nil, s.err
	}
	return &authsignal.Action{State: s.state}, nil
}

func TestReviewStateFromGetAction(t *testing.T) {
	tests := []struct {
		name   string
		state  authsignal.State
		err    error
		status int // of the visit
		ran    bool
	}{
		{"REVIEW_SUCCEEDED runs it", authsignal.StateReviewSucceeded, nil, http.StatusOK, true},
		{"REVIEW_REQUIRED waits", authsignal.StateReviewRequired, nil, http.StatusOK, false},
		{"an unknown state waits", "SOMETHING_NEW", nil, http.StatusOK, false},
		{"an empty state waits", "", nil, http.StatusOK, false},
		{"a provider failure waits", "", errors.New("down"), http.StatusOK, false},
		{"REVIEW_FAILED ends it", authsignal.StateReviewFailed, nil, http.StatusForbidden, false},
		{"CHALLENGE_SUCCEEDED is no approval: ends it", authsignal.StateChallengeSucceeded, nil, http.StatusForbidden, false},
		{"ALLOW is no approval: ends it", authsignal.StateAllow, nil, http.StatusForbidden, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newReviewEnv(t, func(p stepup.Provider) stepup.Provider {
				return &stateGetter{Provider: p, state: tc.state, err: tc.err}
			})
			b := env.NewBrowser()
			b.Login("alice")
			status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
			resp := b.Get(status)
			assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
			assert.Equal(t, tc.ran, len(env.Ledger.Runs("review")) == 1)
		})
	}
}

func TestReviewUserCheckHoldsWhereSessionIDsCollide(t *testing.T) {
	// An application whose session ids are not unique across users: the
	// user check alone refuses mallory.
	env := stepuptest.NewEnv(t, reviewApp, stepuptest.Options{Config: func(c *stepup.Config) {
		stepuptest.ReviewConfig(c)
		c.SessionID = func(*http.Request) string { return "the same for everyone" }
	}})
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil))
	env.Settle("alice", "wire", stepuptest.ReviewID(status), authsignal.StateReviewSucceeded)
	mallory := env.NewBrowser()
	mallory.Login("mallory")
	assert.Equal(t, http.StatusForbidden, mallory.Get(status).StatusCode)
	assert.Empty(t, env.Ledger.Runs("review"))
}

func TestReviewNeedsASession(t *testing.T) {
	// Config.SessionID says the client has no session: nothing could tell
	// it apart later, so the request is refused as without Review.
	env := stepuptest.NewEnv(t, reviewApp, stepuptest.Options{Config: func(c *stepup.Config) {
		stepuptest.ReviewConfig(c)
		c.SessionID = func(*http.Request) string { return "" }
	}})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
	assert.ErrorIs(t, env.Events.Of(stepup.EventReview)[0].Err, stepup.ErrReview)
}

func TestAChallengesParkIsNoReviewEvenWithoutASession(t *testing.T) {
	// Alice's fresh browser has no guard session (an empty id), nor has
	// her challenge's park a review session: a KindPark is never run here.
	env := newReviewEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	challenge := b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil))
	tracked := env.Emulator.Tracked()
	fresh := env.NewBrowser()
	fresh.Login("alice")
	resp := fresh.Get(stepuptest.CallbackPath + "?review=" + tracked[len(tracked)-1].IdempotencyKey)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
	assert.Empty(t, env.Ledger.Runs("transfer"))
	done := b.Get(b.Complete(challenge))
	assert.Equal(t, http.StatusOK, done.StatusCode, "the challenge's park is untouched: "+done.Body)
	assert.Len(t, env.Ledger.Runs("transfer"), 1)
}

func TestReviewRefusesAnAddressItCannotResume(t *testing.T) {
	env := newReviewEnv(t, nil)
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/review?note=caf\xc3\xa9", stepuptest.Form, "x=1", nil)
	assert.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
	assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrBadRequest)
	assert.Empty(t, env.Ledger.Runs("review"))
}

func TestReviewCannotMeetPolicyMethods(t *testing.T) {
	env := newReviewEnv(t, nil, func(c *stepup.Config) {
		for i := range c.Policies {
			if c.Policies[i].Action == "wire" {
				c.Policies[i].Methods = []string{"PASSKEY"}
			}
		}
	})
	b := env.NewBrowser()
	b.Login("alice")
	resp := b.Do(http.MethodPost, "/review", stepuptest.Form, "x=1", nil)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
	assert.ErrorIs(t, env.Events.Of(stepup.EventReview)[0].Err, stepup.ErrReview)
	assert.Empty(t, env.Events.Of(stepup.EventReplay))
}
