package stepuptest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// ReviewFor is the Policy.Review that ReviewConfig gives the suite's
// POST /review (action "wire", which the emulator's rules hold for review).
const ReviewFor = 24 * time.Hour

// ReviewConfig turns on Policy.Review (ReviewFor) for the policies of
// action "wire" in c: POST /review then parks for a reviewer instead of
// answering 403.
func ReviewConfig(c *stepup.Config) {
	for i := range c.Policies {
		if c.Policies[i].Action == "wire" {
			c.Policies[i].Review = ReviewFor
		}
	}
}

// Settle sets the state of the action a review park id was tracked under
// for user, as a reviewer does in Authsignal's portal (PATCH).
func (env *Env) Settle(user, action, id string, state authsignal.State) {
	env.T.Helper()
	_, err := env.Client.UpdateAction(context.Background(), user, action, id, state)
	require.NoError(env.T, err)
}

// Parked asserts that resp sends the browser to a review's status URL
// under the callback and returns that path.
func (b *Browser) Parked(resp *Response) string {
	b.T.Helper()
	require.Equal(b.T, http.StatusSeeOther, resp.StatusCode, "expected the status page, got %q", resp.Body)
	loc := resp.Header.Get("Location")
	require.True(b.T, strings.HasPrefix(loc, CallbackPath+"?review="), "status URL %q", loc)
	return loc
}

// ReviewID is the park id in a status URL.
func ReviewID(statusURL string) string { return Param(statusURL, "review") }

// runReview runs review-then-run flows (Policy.Review).
func runReview(t *testing.T, a Adapter) {
	newEnv := func(t *testing.T) *Env { return NewEnv(t, a, Options{Config: ReviewConfig}) }
	t.Run("browser: waiting page, then one run after approval, then the kept answer", func(t *testing.T) {
		env := newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1&to=bob", nil))
		assert.Empty(t, env.Ledger.Runs("review"), "nothing runs before the review")

		wait := b.Get(status)
		require.Equal(t, http.StatusOK, wait.StatusCode, wait.Body)
		assert.Contains(t, wait.Body, "Waiting for approval")
		assert.Contains(t, wait.Body, `http-equiv="refresh"`, "the page refreshes itself")
		assert.Equal(t, "no-store", wait.Header.Get("Cache-Control"))

		env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
		still := b.Get(status)
		assert.Equal(t, http.StatusOK, still.StatusCode)
		assert.Contains(t, still.Body, "Waiting for approval", "asked within ReviewPoll: Authsignal is not asked again")
		assert.Empty(t, env.Ledger.Runs("review"))

		env.Clock.Advance(5 * time.Second) // the default ReviewPoll
		ran := b.Get(status)
		require.Equal(t, http.StatusOK, ran.StatusCode, ran.Body)
		assert.Equal(t, "done: review POST /review x=1&to=bob", ran.Body)
		runs := env.Ledger.Runs("review")
		require.Len(t, runs, 1)
		assert.Equal(t, "review", runs[0].How)
		assert.Equal(t, "alice", runs[0].User, "the live request's cookies: the app's login session")

		env.Clock.Advance(5 * time.Second)
		again := b.Get(status)
		assert.Equal(t, http.StatusOK, again.StatusCode)
		assert.Equal(t, ran.Body, again.Body, "the kept answer")
		assert.Len(t, env.Ledger.Runs("review"), 1, "run once")
	})
	t.Run("api: 202 with the status URL, polled until the replay's answer, once", func(t *testing.T) {
		env := newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.API(http.MethodPost, "/review", `{"x":1}`, nil)
		require.Equal(t, http.StatusAccepted, resp.StatusCode, resp.Body)
		loc := resp.Header.Get("Location")
		require.True(t, strings.HasPrefix(loc, CallbackPath+"?review="), loc)
		var body struct {
			Status    string `json:"status"`
			StatusURL string `json:"statusUrl"`
			ExpiresIn int    `json:"expiresIn"`
		}
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &body))
		assert.Equal(t, "pending", body.Status)
		assert.Equal(t, env.Server.URL+loc, body.StatusURL)
		assert.Equal(t, int(ReviewFor/time.Second), body.ExpiresIn)

		poll := b.API(http.MethodGet, loc, "", nil)
		assert.Equal(t, http.StatusAccepted, poll.StatusCode, poll.Body)
		assert.Equal(t, loc, poll.Header.Get("Location"))
		assert.NotEmpty(t, poll.Header.Get("Retry-After"))

		env.Settle("alice", "wire", ReviewID(loc), authsignal.StateReviewSucceeded)
		env.Clock.Advance(5 * time.Second)
		ran := b.API(http.MethodGet, loc, "", nil)
		require.Equal(t, http.StatusOK, ran.StatusCode, ran.Body)
		assert.Equal(t, `done: review POST /review {"x":1}`, ran.Body)
		again := b.API(http.MethodGet, loc, "", nil)
		assert.Equal(t, ran.Body, again.Body)
		assert.Len(t, env.Ledger.Runs("review"), 1)
	})
	for _, settled := range []authsignal.State{authsignal.StateReviewFailed, authsignal.StateBlock} {
		t.Run("settled "+string(settled)+": 403, ended for good", func(t *testing.T) {
			env := newEnv(t)
			b := env.NewBrowser()
			b.Login("alice")
			status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1", nil))
			env.Settle("alice", "wire", ReviewID(status), settled)
			resp := b.Get(status)
			require.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Contains(t, resp.Body, "did not approve")

			env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
			env.Clock.Advance(time.Minute)
			later := b.Get(status)
			assert.Equal(t, http.StatusForbidden, later.StatusCode, "a later approval runs nothing")
			assert.Empty(t, env.Ledger.Runs("review"))
		})
	}
	t.Run("expired: 410, and a later approval runs nothing", func(t *testing.T) {
		env := newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1", nil))
		env.Clock.Advance(ReviewFor - time.Second)
		assert.Equal(t, http.StatusOK, b.Get(status).StatusCode, "still waiting just before its end")
		env.Clock.Advance(time.Second)
		env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
		resp := b.Get(status)
		assert.Equal(t, http.StatusGone, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("review"))
	})
	t.Run("another user, another session of the user: refused, nothing runs; the owner still can", func(t *testing.T) {
		env := newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1", nil))
		env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
		env.Clock.Advance(5 * time.Second)

		mallory := env.NewBrowser()
		mallory.Login("mallory")
		assert.Equal(t, http.StatusForbidden, mallory.Get(status).StatusCode)
		elsewhere := env.NewBrowser()
		elsewhere.Login("alice")
		assert.Equal(t, http.StatusForbidden, elsewhere.Get(status).StatusCode, "the status URL opened in another browser")
		anonymous := env.NewBrowser()
		assert.Equal(t, http.StatusUnauthorized, anonymous.Get(status).StatusCode)
		assert.Empty(t, env.Ledger.Runs("review"))

		resp := b.Get(status)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Len(t, env.Ledger.Runs("review"), 1)
	})
	t.Run("20 concurrent visits after approval: exactly one run", func(t *testing.T) {
		env := newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1", nil))
		env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
		env.Clock.Advance(5 * time.Second)
		visitConcurrently(t, b, []string{env.Server.URL + status}, 20)
		assert.Len(t, env.Ledger.Runs("review"), 1, "exactly one execution")
	})
}

// visitConcurrently has b visit the targets, n times in all, at once, and
// checks that every answer is a clear one.
func visitConcurrently(t *testing.T, b *Browser, targets []string, n int) {
	t.Helper()
	statuses := getAtOnce(b, targets, n)
	ok := 0
	for _, s := range statuses {
		// 200: the run or its kept answer (or still waiting, for a
		// visit that asked before another learned the approval); 409: a
		// visit that came while the run was under way.
		assert.Contains(t, []int{http.StatusOK, http.StatusConflict}, s, "a clear answer, never an error")
		if s == http.StatusOK {
			ok++
		}
	}
	assert.GreaterOrEqual(t, ok, 1)
}

// runSharedReview parks a review on one instance and runs it from both,
// concurrently, once (RunShared).
func runSharedReview(t *testing.T, env *Env, other *httptest.Server) {
	b := env.NewBrowser()
	b.Login("alice")
	status := b.Parked(b.Do(http.MethodPost, "/review", Form, "x=1&to=bob", nil))
	assert.Equal(t, http.StatusOK, b.Get(onInstance(env.Server.URL+status, other)).StatusCode, "waiting, on the other instance too")
	env.Settle("alice", "wire", ReviewID(status), authsignal.StateReviewSucceeded)
	env.Clock.Advance(5 * time.Second)
	visitConcurrently(t, b, []string{env.Server.URL + status, onInstance(env.Server.URL+status, other)}, 20)
	runs := env.Ledger.Runs("review")
	require.Len(t, runs, 1, "exactly one execution across both instances")
	assert.Equal(t, "x=1&to=bob", string(runs[0].Body))
	kept := b.Get(onInstance(env.Server.URL+status, other))
	assert.Equal(t, http.StatusOK, kept.StatusCode)
	assert.Equal(t, "done: review POST /review x=1&to=bob", kept.Body)
}

// getAtOnce has b GET the targets (as a browser: Accept text/html), n
// requests in all, spread over the targets in turn and sent at the same
// moment; it answers each request's status, -1 for one that failed.
func getAtOnce(b *Browser, targets []string, n int) []int {
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = -1
			req, err := http.NewRequest(http.MethodGet, targets[i%len(targets)], nil)
			if err != nil {
				return
			}
			req.Header.Set("Accept", "text/html")
			<-start
			resp, err := b.C.Do(req)
			if err != nil {
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	return statuses
}
