package stepuptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// Run runs the end-to-end conformance suite against an adapter.
func Run(t *testing.T, a Adapter) {
	t.Run("browser flows", func(t *testing.T) { runBrowserFlows(t, a) })
	t.Run("decisions", func(t *testing.T) { runDecisions(t, a) })
	t.Run("refusals", func(t *testing.T) { runRefusals(t, a) })
	t.Run("remember", func(t *testing.T) { runRemember(t, a) })
	t.Run("grants a user can see and revoke", func(t *testing.T) { runGrants(t, a) })
	t.Run("api", func(t *testing.T) { runAPI(t, a) })
	t.Run("limits", func(t *testing.T) { runLimits(t, a) })
	t.Run("lock-out and shared capacity", func(t *testing.T) { runLockout(t, a) })
	t.Run("caps that never punish an honest user", func(t *testing.T) { runCaps(t, a) })
	t.Run("the guard's cookie", func(t *testing.T) { runGuardCookie(t, a) })
	t.Run("replay hygiene", func(t *testing.T) { runReplayHygiene(t, a) })
	t.Run("parsing", func(t *testing.T) { runParsing(t, a) })
	t.Run("binding", func(t *testing.T) { runBinding(t, a) })
	t.Run("what was judged is what runs", func(t *testing.T) { runJudged(t, a) })
	t.Run("replay spends at its route", func(t *testing.T) { runReplaySpend(t, a) })
	t.Run("proof of the challenge", func(t *testing.T) { runProof(t, a) })
	t.Run("two instances", func(t *testing.T) { runInstances(t, a) })
	t.Run("unenrolled users", func(t *testing.T) { runUnenrolled(t, a) })
	t.Run("methods and what the user approves", func(t *testing.T) { runMethods(t, a) })
	t.Run("review then run", func(t *testing.T) { runReview(t, a) })
}

func runBrowserFlows(t *testing.T, a Adapter) {
	tests := []struct {
		name        string
		method      string
		path        string
		contentType string
		body        string
		handler     string
	}{
		{"POST form", http.MethodPost, "/transfer?ref=a%2Fb", Form, "amount=5000&to=bob&note=caf%C3%A9+%26+co", "transfer"},
		{"POST JSON", http.MethodPost, "/api/transfer", "application/json", `{"amount": 2500.5, "to": "bob", "memo": "\u00e9 \"q\""}`, "apiTransfer"},
		{"PUT", http.MethodPut, "/profile", "application/json", `{"email":"new@example.com"}`, "profile"},
		{"DELETE", http.MethodDelete, "/items/42", "", "", "deleteItem"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{})
			b := env.NewBrowser()
			b.Login("alice")

			challenge := b.Challenge(b.Do(tc.method, tc.path, tc.contentType, tc.body, nil))
			assert.Empty(t, env.Ledger.Runs(tc.handler), "handler must not run before the challenge")

			callback := b.Complete(challenge)
			resp := b.Get(callback)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
			assert.Equal(t, "no-referrer", resp.Header.Get("Referrer-Policy"))

			runs := env.Ledger.Runs(tc.handler)
			require.Len(t, runs, 1)
			assert.Equal(t, tc.method, runs[0].Method)
			assert.Equal(t, []byte(tc.body), nonNil(runs[0].Body), "byte-identical body")
			assert.Equal(t, "alice", runs[0].User)
			assert.Equal(t, "challenge", runs[0].How)
			if tc.contentType != "" {
				assert.Equal(t, tc.contentType, runs[0].Header.Get("Content-Type"))
			}
			assert.Contains(t, resp.Body, "done: "+tc.handler)

			// A refresh shows the kept outcome and runs nothing again.
			again := b.Get(callback)
			assert.Equal(t, http.StatusOK, again.StatusCode)
			assert.Equal(t, resp.Body, again.Body)
			assert.Len(t, env.Ledger.Runs(tc.handler), 1)
		})
	}

	t.Run("query string kept", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer?ref=a%2Fb&x=1", Form, "amount=5000", nil))))
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "ref=a%2Fb&x=1", runs[0].Query)
	})

	t.Run("GET resumes with a single-use pass", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		challenge := b.Challenge(b.Get("/report?month=2026-11"))
		resp := b.Get(b.Complete(challenge))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		require.Equal(t, "/report?month=2026-11", resp.Header.Get("Location"))
		assert.Empty(t, env.Ledger.Runs("report"))

		got := b.Get(resp.Header.Get("Location"))
		require.Equal(t, http.StatusOK, got.StatusCode, got.Body)
		runs := env.Ledger.Runs("report")
		require.Len(t, runs, 1)
		assert.Equal(t, "pass", runs[0].How)

		// The pass is spent: the next visit is challenged again.
		b.Challenge(b.Get("/report?month=2026-11"))
		assert.Len(t, env.Ledger.Runs("report"), 1)
	})

	t.Run("GET pass expires", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/report"))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		env.Clock.Advance(time.Minute)
		b.Challenge(b.Get("/report"))
		assert.Empty(t, env.Ledger.Runs("report"))
	})

	t.Run("two tabs resume their own requests", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		c1 := b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=1500&to=bob", nil))
		c2 := b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=9000&to=carol", nil))
		cb2 := b.Complete(c2)
		cb1 := b.Complete(c1)

		require.Equal(t, http.StatusOK, b.Get(cb2).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=9000&to=carol", string(runs[0].Body))

		require.Equal(t, http.StatusOK, b.Get(cb1).StatusCode)
		runs = env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, "amount=1500&to=bob", string(runs[1].Body))
	})

	t.Run("small transfer passes without a challenge", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=50&to=bob", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=50&to=bob", string(runs[0].Body))
		assert.Equal(t, "allow", runs[0].How)
		tracked := env.Emulator.Tracked()
		require.Len(t, tracked, 1)
		assert.Equal(t, 50.0, tracked[0].Custom["amount"], "the declared attribute reaches the rules")
		assert.Equal(t, "127.0.0.1", tracked[0].IPAddress)
	})
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func runDecisions(t *testing.T, a Adapter) {
	t.Run("unprotected route: nothing tracked", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.Do(http.MethodPost, "/open", Form, "a=1", nil)
		require.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
	})
	t.Run("not logged in: 401, nothing tracked", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("BLOCK: 403", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/block", Form, "x=1", nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("block"))
	})
	t.Run("refusals: a page for a browser, JSON for an API client, from every adapter", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/html", "not logged in, browser")
		assert.Contains(t, resp.Body, `id="stepup-message"`)
		b.Login("alice")
		resp = b.Do(http.MethodPost, "/block", Form, "x=1", nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "text/html", "blocked, browser")
		assert.Contains(t, resp.Body, `id="stepup-message"`)
		resp = b.Do(http.MethodPost, "/block", Form, "x=1", http.Header{"X-Requested-With": {"XMLHttpRequest"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Contains(t, resp.Header.Get("Content-Type"), "application/json", "blocked, API")
		assert.Contains(t, resp.Body, `"error":"blocked"`)
	})
	t.Run("REVIEW_REQUIRED: 403 by default", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/review", Form, "x=1", nil)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("review"))
	})
	t.Run("REVIEW_REQUIRED: configurable status", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.ReviewStatus = http.StatusAccepted + 200 }})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/review", Form, "x=1", nil)
		assert.Equal(t, http.StatusAccepted+200, resp.StatusCode)
	})

	faults := []struct {
		name  string
		fault emulator.Fault
	}{
		{"provider timeout", emulator.Fault{Latency: 3 * time.Second}},
		{"provider 5xx", emulator.Fault{Status: http.StatusBadGateway}},
		{"provider garbage", emulator.Fault{Malformed: true}},
		{"provider drops the connection", emulator.Fault{Drop: true}},
	}
	for _, f := range faults {
		t.Run(f.name+": fail closed with 503 and Retry-After", func(t *testing.T) {
			env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.ProviderTimeout = 300 * time.Millisecond }})
			b := env.NewBrowser()
			b.Login("alice")
			env.Emulator.SetFault(f.fault)
			resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
			assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
	}

	t.Run("fail open only when the policy says so", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			for i := range c.Policies {
				if c.Policies[i].Route == "/profile" {
					c.Policies[i].FailOpen = true
				}
			}
		}})
		b := env.NewBrowser()
		b.Login("alice")
		env.Emulator.SetFault(emulator.Fault{Status: http.StatusInternalServerError})
		resp := b.Do(http.MethodPut, "/profile", "application/json", `{"a":1}`, nil)
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("profile")
		require.Len(t, runs, 1)
		assert.Equal(t, "fail_open", runs[0].How)
		assert.Equal(t, `{"a":1}`, string(runs[0].Body))
	})

	// A challenge URL on an origin Config.ChallengeOrigins does not list is
	// the configuration's mistake (500 misconfigured); the rest are the
	// provider's (503). Both fail closed.
	badURLs := []struct {
		name   string
		mutate func(*authsignal.TrackResponse)
		expect int
	}{
		{"missing challenge URL", func(r *authsignal.TrackResponse) { r.URL = "" }, http.StatusServiceUnavailable},
		{"challenge URL on another host", func(r *authsignal.TrackResponse) { r.URL = "https://evil.example/challenge?x=1" }, http.StatusInternalServerError},
		{"challenge URL with credentials", func(r *authsignal.TrackResponse) { r.URL = strings.Replace(r.URL, "http://", "http://u:p@", 1) }, http.StatusServiceUnavailable},
		{"another idempotency key", func(r *authsignal.TrackResponse) { r.IdempotencyKey = "other" }, http.StatusServiceUnavailable},
		{"unknown state", func(r *authsignal.TrackResponse) { r.State = "MAYBE" }, http.StatusServiceUnavailable},
	}
	for _, tc := range badURLs {
		t.Run(tc.name+": fail closed", func(t *testing.T) {
			env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider {
				return mutateTrack{p, tc.mutate}
			}})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
			assert.Equal(t, tc.expect, resp.StatusCode)
			assert.Empty(t, resp.Header.Get("Location"))
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
	}
}

// mutateTrack alters what the provider answers to a track call, to play a
// provider that misbehaves in ways the emulator does not.
type mutateTrack struct {
	stepup.Provider
	mutate func(*authsignal.TrackResponse)
}

func (m mutateTrack) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	resp, err := m.Provider.Track(ctx, user, action, req)
	if err == nil {
		m.mutate(resp)
	}
	return resp, err
}

// lyingValidate answers validate calls with a fixed verdict.
type lyingValidate struct {
	stepup.Provider
	answer func(authsignal.ValidateRequest) *authsignal.ValidateResponse
}

func (l lyingValidate) Validate(_ context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	return l.answer(req), nil
}

func runRefusals(t *testing.T, a Adapter) {
	// park starts a large transfer and returns the callback URL after the
	// challenge was completed.
	park := func(b *Browser, body string) string {
		b.T.Helper()
		return b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, body, nil)))
	}

	t.Run("another user's token", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		alice, bob := env.NewBrowser(), env.NewBrowser()
		alice.Login("alice")
		bob.Login("bob")
		cbAlice := park(alice, "amount=5000")
		cbBob := park(bob, "amount=7000")
		resp := alice.Get(WithParam(cbAlice, "token", Param(cbBob, "token")))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.NotContains(t, resp.Body, "User is invalid", "no detail on why the token failed")
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("another action's token", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cbTransfer := park(b, "amount=5000")
		cbProfile := b.Complete(b.Challenge(b.Do(http.MethodPut, "/profile", "application/json", `{}`, nil)))
		resp := b.Get(WithParam(cbTransfer, "token", Param(cbProfile, "token")))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
		assert.Empty(t, env.Ledger.Runs("profile"))
	})
	t.Run("another tab's token", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb1 := park(b, "amount=5000&to=bob")
		cb2 := park(b, "amount=6000&to=eve")
		resp := b.Get(WithParam(cb1, "token", Param(cb2, "token")))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
		// The other tab still resumes its own request.
		require.Equal(t, http.StatusOK, b.Get(cb2).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=6000&to=eve", string(runs[0].Body))
	})
	t.Run("replayed token on a fresh park", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb1 := park(b, "amount=5000")
		require.Equal(t, http.StatusOK, b.Get(cb1).StatusCode)
		challenge2 := b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=8000", nil))
		parkID2 := Param(b.Complete(challenge2), "park")
		resp := b.Get(WithParam(cb1, "park", parkID2))
		assert.Contains(t, []int{http.StatusForbidden, http.StatusConflict}, resp.StatusCode)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
	lies := []struct {
		name   string
		answer func(authsignal.ValidateRequest) *authsignal.ValidateResponse
	}{
		{"provider says valid for a token of another park", func(req authsignal.ValidateRequest) *authsignal.ValidateResponse {
			return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
				UserID: req.UserID, Action: req.Action, IdempotencyKey: "not-the-park"}
		}},
		{"valid but not CHALLENGE_SUCCEEDED", func(req authsignal.ValidateRequest) *authsignal.ValidateResponse {
			return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateAllow, UserID: req.UserID, Action: req.Action}
		}},
		{"valid for another user", func(req authsignal.ValidateRequest) *authsignal.ValidateResponse {
			return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded, UserID: "mallory", Action: req.Action}
		}},
		{"valid with fields missing", func(authsignal.ValidateRequest) *authsignal.ValidateResponse {
			return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded}
		}},
	}
	for _, lie := range lies {
		t.Run(lie.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider { return lyingValidate{p, lie.answer} }})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Get(park(b, "amount=5000"))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
	}
	for _, end := range []struct {
		name string
		how  func(b *Browser, challengeURL string) string
	}{{"cancelled challenge", (*Browser).Cancel}, {"failed challenge", (*Browser).Fail}} {
		t.Run(end.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{})
			b := env.NewBrowser()
			b.Login("alice")
			cb := end.how(b, b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
			resp := b.Get(cb)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
	}
	t.Run("20 concurrent callbacks: exactly one execution", func(t *testing.T) {
		// A long provider deadline: on a loaded machine a validation may
		// be slow, and a 503 is not the race this test is about.
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.ProviderTimeout = 15 * time.Second }})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		var wg sync.WaitGroup
		var ok atomic.Int32
		statuses := make(chan int, 20)
		for range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req, _ := http.NewRequest(http.MethodGet, cb, nil)
				req.Header.Set("Accept", "text/html")
				resp, err := b.C.Do(req)
				if err != nil {
					statuses <- -1
					return
				}
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				}
				statuses <- resp.StatusCode
			}()
		}
		wg.Wait()
		close(statuses)
		for s := range statuses {
			assert.Contains(t, []int{http.StatusOK, http.StatusConflict}, s)
		}
		assert.Len(t, env.Ledger.Runs("transfer"), 1, "exactly one execution")
		assert.GreaterOrEqual(t, ok.Load(), int32(1))
	})
	t.Run("expired park", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.ParkTTL = 5 * time.Minute }})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		env.Clock.Advance(5 * time.Minute)
		resp := b.Get(cb)
		assert.Contains(t, []int{http.StatusGone, http.StatusForbidden}, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("park just before expiry still resumes", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.ParkTTL = 5 * time.Minute }})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		env.Clock.Advance(5*time.Minute - time.Second)
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
	t.Run("foreign park id (another session of the same user) ends the park", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b1, b2 := env.NewBrowser(), env.NewBrowser()
		b1.Login("alice")
		b2.Login("alice")
		cb := park(b1, "amount=5000")
		resp := b2.Get(cb)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
		// SECURITY.md threat 18: whoever completed the challenge is not
		// whoever parked the request, so the park's own session cannot
		// redeem it afterwards either.
		assert.NotEqual(t, http.StatusOK, b1.Get(cb).StatusCode, "the park is ended")
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("callback without a session", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		stranger := env.NewBrowser()
		assert.Equal(t, http.StatusUnauthorized, stranger.Get(cb).StatusCode)
		stranger.Login("alice")
		assert.Equal(t, http.StatusForbidden, stranger.Get(cb).StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("another user on the same browser", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		b.Login("bob")
		assert.Equal(t, http.StatusForbidden, b.Get(cb).StatusCode)
		_, err := env.Store.Get(context.Background(), Param(cb, "park"))
		assert.ErrorIs(t, err, stepup.ErrNotFound, "the previous user's park is deleted from the Store, not only forgotten by the cookie")
		b.Login("alice")
		assert.Equal(t, http.StatusForbidden, b.Get(cb).StatusCode, "purged when the user changed")
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("malformed callback parameters", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		for _, q := range []string{"", "?park=", "?park=abc&token=x", "?park=%zz", "?token=abc",
			"?park=AAAAAAAAAAAAAAAAAAAAAA&token=" + strings.Repeat("a", 10000)} {
			resp := b.Get(CallbackPath + q)
			assert.Contains(t, []int{http.StatusBadRequest, http.StatusForbidden}, resp.StatusCode, q)
		}
		assert.Equal(t, http.StatusMethodNotAllowed, b.Do(http.MethodPost, CallbackPath+"?park=x", Form, "", nil).StatusCode)
	})
	t.Run("HEAD on the callback runs nothing", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		resp := b.Do(http.MethodHead, cb, "", "", nil)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("transfer"))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode, "the GET still resumes it")
	})
	t.Run("provider down at validate leaves the park pending", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := park(b, "amount=5000")
		env.Emulator.SetFault(emulator.Fault{Status: http.StatusServiceUnavailable, PathPrefix: "/validate"})
		down := b.Get(cb)
		assert.Equal(t, http.StatusServiceUnavailable, down.StatusCode)
		assert.Equal(t, "5", down.Header.Get("Retry-After"))
		env.Emulator.ClearFaults()
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
}

func runRemember(t *testing.T, a Adapter) {
	t.Run("grant per action, fixed expiry", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/admin"))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode) // the pass
		tracked := len(env.Emulator.Tracked())

		env.Clock.Advance(4 * time.Minute)
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "remembered")
		assert.Equal(t, tracked, len(env.Emulator.Tracked()), "no track while remembered")
		runs := env.Ledger.Runs("admin")
		assert.Equal(t, "remembered", runs[len(runs)-1].How)

		// Other actions are not covered by the grant.
		b.Challenge(b.Get("/report"))

		// Activity did not extend it: exactly at 5 minutes it is gone.
		env.Clock.Advance(time.Minute)
		b.Challenge(b.Get("/admin"))
	})
	t.Run("grant vanishes when the user changes", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		b.Get(b.Get(b.Complete(b.Challenge(b.Get("/admin")))).Header.Get("Location"))
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode)
		b.Login("bob")
		b.Challenge(b.Get("/admin"))
		b.Login("alice")
		b.Challenge(b.Get("/admin"))
	})
	t.Run("grant gone after logout (Forget), even with the old cookie", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		b.Get(b.Get(b.Complete(b.Challenge(b.Get("/admin")))).Header.Get("Location"))
		old := b.Jar.Cookies(mustURL(env.Server.URL))
		b.Do(http.MethodPost, "/logout", Form, "", nil)
		b.Login("alice")
		b.Jar.SetCookies(mustURL(env.Server.URL), old) // roll the cookies back
		b.Challenge(b.Get("/admin"))
	})
}

func runAPI(t *testing.T, a Adapter) {
	challenge := func(t *testing.T, b *Browser, body string) (string, map[string]any) {
		t.Helper()
		resp := b.API(http.MethodPost, "/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`)
		assert.Equal(t, "no-store", resp.Header.Get("Cache-Control"))
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		assert.Equal(t, "insufficient_user_authentication", doc["error"])
		assert.Equal(t, "transfer", doc["action"])
		assert.Equal(t, stepup.TokenHeader, doc["tokenHeader"])
		return doc["url"].(string), doc
	}
	t.Run("401 challenge, token retry runs once", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		body := `{"amount": 5000, "to": "bob"}`
		url, _ := challenge(t, b, body)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))

		// The popup lands on the callback, which hands the token over.
		cb := b.Complete(url)
		page := b.Get(cb)
		require.Equal(t, http.StatusOK, page.StatusCode)
		assert.Contains(t, page.Body, "stepup:token")
		assert.Contains(t, page.Header.Get("Content-Security-Policy"), "script-src 'nonce-")
		assert.Empty(t, env.Ledger.Runs("apiTransfer"), "the hand-off runs nothing")

		token := Param(cb, "token")
		resp := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("apiTransfer")
		require.Len(t, runs, 1)
		assert.Equal(t, body, string(runs[0].Body))
		assert.Equal(t, "token", runs[0].How)

		again := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusConflict, again.StatusCode, "token reuse refused")
		assert.Len(t, env.Ledger.Runs("apiTransfer"), 1)
	})
	t.Run("retry with another body is refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		url, _ := challenge(t, b, `{"amount": 5000, "to": "bob"}`)
		token := Param(b.Complete(url), "token")
		resp := b.API(http.MethodPost, "/api/transfer", `{"amount": 50000, "to": "eve"}`, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
	t.Run("token of another user is refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		alice, bob := env.NewBrowser(), env.NewBrowser()
		alice.Login("alice")
		bob.Login("bob")
		body := `{"amount": 5000}`
		url, _ := challenge(t, bob, body)
		token := Param(bob.Complete(url), "token")
		challenge(t, alice, body)
		resp := alice.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
	t.Run("token before completion is refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		url, _ := challenge(t, b, `{"amount": 5000}`)
		token := Param(url, "token") // the page's own token, challenge not done
		resp := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
	t.Run("XHR from a browser gets the API answer", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", http.Header{"X-Requested-With": {"XMLHttpRequest"}})
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	})
}

func runLimits(t *testing.T, a Adapter) {
	t.Run("body at the limit parks, one byte more is refused before tracking", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxBodyBytes = 1024 }})
		b := env.NewBrowser()
		b.Login("alice")
		prefix := "amount=5000&pad="
		atLimit := prefix + strings.Repeat("x", 1024-len(prefix))
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, atLimit, nil)))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, atLimit, string(runs[0].Body))

		tracked := len(env.Emulator.Tracked())
		resp := b.Do(http.MethodPost, "/transfer", Form, atLimit+"x", nil)
		assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
		assert.Equal(t, tracked, len(env.Emulator.Tracked()), "nothing tracked")
	})
	t.Run("multipart refused before tracking", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", "multipart/form-data; boundary=x", "--x\r\n\r\n--x--\r\n", nil)
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
	})
	t.Run("compressed body refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", http.Header{"Content-Encoding": {"gzip"}})
		assert.Equal(t, http.StatusUnsupportedMediaType, resp.StatusCode)
		assert.Empty(t, env.Emulator.Tracked())
	})
	t.Run("pending parks per session: the oldest is dropped", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxPending = 2 }})
		b := env.NewBrowser()
		b.Login("alice")
		var cbs []string
		for i := range 3 {
			cbs = append(cbs, b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, fmt.Sprintf("amount=%d", 2000+i), nil))))
		}
		assert.Equal(t, http.StatusForbidden, b.Get(cbs[0]).StatusCode, "evicted")
		assert.Equal(t, http.StatusOK, b.Get(cbs[1]).StatusCode)
		assert.Equal(t, http.StatusOK, b.Get(cbs[2]).StatusCode)
		assert.Len(t, env.Ledger.Runs("transfer"), 2)
	})
	t.Run("challenges per user are capped, per ParkTTL window", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxChallengesPerUser, c.ParkTTL = 3, 5*time.Minute }})
		alice, bob := env.NewBrowser(), env.NewBrowser()
		alice.Login("alice")
		bob.Login("bob")
		for range 4 {
			assert.Equal(t, http.StatusOK, alice.Do(http.MethodPost, "/transfer", Form, "amount=5", nil).StatusCode, "ALLOW never counts")
		}
		alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=2001", nil))
		alice.API(http.MethodPost, "/api/transfer", `{"amount": 2002}`, nil)
		alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=2003", nil))
		tracked := len(env.Emulator.Tracked())
		over := alice.Do(http.MethodPost, "/transfer", Form, "amount=2004", nil)
		assert.Equal(t, http.StatusTooManyRequests, over.StatusCode)
		assert.Equal(t, "300", over.Header.Get("Retry-After"))
		assert.Empty(t, over.Header.Get("Location"))
		assert.Len(t, env.Emulator.Tracked(), tracked, "the cap is checked before tracking")
		bob.Challenge(bob.Do(http.MethodPost, "/transfer", Form, "amount=2005", nil)) // others are not affected
		env.Clock.Advance(5 * time.Minute)
		alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=2006", nil))
	})
	t.Run("a request that opens no challenge gives its slot back, whatever came before", func(t *testing.T) {
		// Per user and per login session: allowed requests between
		// challenges neither count nor make the guard forget the
		// challenges already counted.
		for _, tc := range []struct {
			name string
			cfg  func(*stepup.Config)
		}{
			{"per user", func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 2, 2 }},
			{"per session", func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 20, 2 }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := NewEnv(t, a, Options{SessionID: true, Config: tc.cfg})
				b := env.NewBrowser()
				b.Login("alice")
				allow := func() {
					t.Helper()
					require.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/transfer", Form, "amount=5", nil).StatusCode)
				}
				allow()
				allow()
				b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=2001", nil))
				allow()
				b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=2002", nil))
				over := b.Do(http.MethodPost, "/transfer", Form, "amount=2003", nil)
				assert.Equal(t, http.StatusTooManyRequests, over.StatusCode, "two challenges counted, allowed ones not")
			})
		}
	})
	t.Run("session cookie stays small", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxPending, c.MaxChallengesPerUser, c.MaxChallengesPerSession = 20, 100, 100 }})
		b := env.NewBrowser()
		b.Login("alice")
		for i := range 25 {
			b.Challenge(b.Do(http.MethodPost, "/transfer", Form, fmt.Sprintf("amount=%d", 2000+i), nil))
		}
		for _, c := range b.Jar.Cookies(mustURL(env.Server.URL)) {
			assert.Less(t, len(c.Value), 4096-len(c.Name)-200, "cookie %s", c.Name)
		}
	})
}

func runReplayHygiene(t *testing.T, a Adapter) {
	t.Run("replay drops smuggled headers and takes cookies from the live request", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		h := http.Header{
			"Authorization":          {"Bearer stolen"},
			"X-Forwarded-For":        {"10.9.9.9"},
			"X-Http-Method-Override": {"DELETE"},
			"Forwarded":              {"for=10.9.9.9"},
			"X-Csrf-Token":           {"kept"},
			"Accept-Language":        {"fr"},
		}
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", h)))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		got := runs[0].Header
		for _, k := range []string{"Authorization", "X-Forwarded-For", "X-Http-Method-Override", "Forwarded"} {
			assert.Empty(t, got.Get(k), k)
		}
		assert.Equal(t, "kept", got.Get("X-Csrf-Token"))
		assert.Equal(t, "fr", got.Get("Accept-Language"))
		assert.Equal(t, http.MethodPost, runs[0].Method)
		assert.Equal(t, "alice", runs[0].User, "the live cookies authenticate the replay")
		// The user alone proves little: a session the application cached in
		// the live request's context would name alice without any cookie.
		assert.Equal(t, len(b.Jar.Cookies(mustURL(env.Server.URL))), runs[0].Cookies, "the replay carries the live cookies")
		assert.Equal(t, int64(len("amount=5000")), runs[0].ContentLength, "Content-Length recomputed")
	})
	t.Run("the replay describes the live connection, not the parked one", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		parked := http.Header{"User-Agent": {"parked/1"}, "X-Forwarded-Proto": {"http"}, "Forwarded": {"for=10.9.9.9"},
			"X-Real-Ip": {"10.9.9.9"}, "X-Url-Scheme": {"http"}}
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", parked)))
		live := http.Header{"User-Agent": {"live/2"}, "X-Forwarded-Proto": {"https"}, "Forwarded": {"for=192.0.2.1;proto=https"},
			"X-Real-Ip": {"192.0.2.1"}, "X-Url-Scheme": {"https"}}
		require.Equal(t, http.StatusOK, b.Do(http.MethodGet, cb, "", "", live).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		for k := range live {
			assert.Equal(t, live.Get(k), runs[0].Header.Get(k), "%s comes from the live callback", k)
		}
	})
	t.Run("an escaped path is replayed exactly", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodDelete, "/items/a%2Fb%20c", "", "", nil))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("deleteItem")
		require.Len(t, runs, 1, "the replay reached its route")
		assert.Equal(t, "/items/a/b c", runs[0].Path)
	})
	t.Run("an unsafe path is never parked", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		// A GET whose path would make an open redirect must not be parked.
		req, err := http.NewRequest(http.MethodGet, env.Server.URL+"/report", nil)
		require.NoError(t, err)
		req.URL.Opaque = "//evil.example/report"
		req.Header.Set("Accept", "text/html")
		resp := b.Send(req)
		loc := resp.Header.Get("Location")
		assert.False(t, strings.HasPrefix(loc, "//") || strings.Contains(loc, "://evil"), "Location %q", loc)
		assert.Empty(t, env.Ledger.Runs("report"))
	})
	t.Run("events are reported without secrets", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000&secret=hunter2", nil)))
		b.Get(cb)
		token := Param(cb, "token")
		var types []stepup.EventType
		for _, ev := range env.Events.All() {
			types = append(types, ev.Type)
			s := fmt.Sprintf("%+v", ev)
			assert.NotContains(t, s, token)
			assert.NotContains(t, s, "hunter2")
		}
		assert.Contains(t, types, stepup.EventChallenge)
		assert.Contains(t, types, stepup.EventReplay)
	})
	t.Run("errors.Is works on refusals", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		assert.Equal(t, http.StatusForbidden, b.Do(http.MethodPost, "/block", Form, "x=1", nil).StatusCode)
		var blocked []stepup.Event
		for _, ev := range env.Events.All() {
			if ev.Type == stepup.EventBlock {
				blocked = append(blocked, ev)
			}
		}
		require.Len(t, blocked, 1)
		assert.ErrorIs(t, blocked[0].Err, stepup.ErrBlocked)
	})
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		panic(err)
	}
	return u
}
