package stepup_test

import (
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/stepuptest"
)

// The end-to-end flows for every choice run in the conformance suite
// (stepuptest, "unenrolled users"); these pin what the suite cannot reach.

func TestNewChecksUnenrolled(t *testing.T) {
	tests := []struct {
		given  string
		expect string // "" when accepted; the stored choice is then expectStored
		stored string
	}{
		{given: "", stored: stepup.UnenrolledDeny},
		{given: "deny", stored: stepup.UnenrolledDeny},
		{given: "enroll", stored: stepup.UnenrolledEnroll},
		{given: "allow", stored: stepup.UnenrolledAllow},
		{given: "Deny", expect: `unenrolled "Deny"`},
		{given: "enrol", expect: `unenrolled "enrol"`},
		{given: " allow", expect: `unenrolled " allow"`},
		{given: "skip", expect: `unenrolled "skip"`},
	}
	for _, tc := range tests {
		t.Run(tc.given, func(t *testing.T) {
			cfg := validConfig()
			cfg.Policies = []stepup.Policy{
				{Method: http.MethodGet, Route: "/a", Action: "a"},
				{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Unenrolled: tc.given},
			}
			g, err := stepup.New(cfg)
			if tc.expect != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.expect)
				assert.Contains(t, err.Error(), "POST /transfer", "names the policy")
				assert.Panics(t, func() { validGuard(t).Require("transfer", stepup.WithUnenrolled(tc.given)) })
				_, err := validGuard(t).NewRule("transfer", stepup.WithUnenrolled(tc.given))
				assert.ErrorContains(t, err, tc.expect)
				return
			}
			require.NoError(t, err)
			rule, ok := g.Match(http.MethodPost, "/transfer")
			require.True(t, ok)
			assert.Equal(t, tc.stored, rule.Policy().Unenrolled)
			rule, err = g.NewRule("transfer", stepup.WithUnenrolled(tc.given))
			require.NoError(t, err)
			assert.Equal(t, tc.stored, rule.Policy().Unenrolled)
		})
	}
}

func validGuard(t *testing.T) *stepup.Guard {
	t.Helper()
	g, err := stepup.New(validConfig())
	require.NoError(t, err)
	return g
}

// Require without WithUnenrolled denies an unenrolled user; with
// UnenrolledAllow the handler runs and knows it.
func TestRequireWithUnenrolled(t *testing.T) {
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateAllow, unenrolled: true}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	var how []stepup.How
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v, _ := stepup.VerificationFrom(r.Context())
		how = append(how, v.How)
	})
	mux := http.NewServeMux()
	mux.Handle("POST /default", g.Require("transfer")(h))
	mux.Handle("POST /allow", g.Require("transfer", stepup.WithUnenrolled(stepup.UnenrolledAllow))(h))

	w := httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/default", nil))
	assert.Equal(t, http.StatusForbidden, w.Code)
	assert.Contains(t, w.Body.String(), "two-step verification")
	assert.Empty(t, how)

	w = httptest.NewRecorder()
	mux.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/allow", nil))
	assert.Equal(t, http.StatusOK, w.Code)
	assert.Equal(t, []stepup.How{stepup.HowUnenrolled}, how)
}

// The URL an unenrolled user is sent to enrol at is a challenge URL: on a
// host outside ChallengeOrigins it is a configuration error (500
// misconfigured), which not even FailOpen lets through, as for any
// challenge. Deny and allow never send anyone there.
func TestUnenrolledEnrolURLIsCheckedLikeAChallenge(t *testing.T) {
	tests := []struct {
		name       string
		choice     string
		failOpen   bool
		expect     int
		expectHow  string
		expectSent bool
	}{
		{"enroll: refused, fails closed", stepup.UnenrolledEnroll, false, http.StatusInternalServerError, "", false},
		{"enroll with FailOpen: misconfigured, fails closed all the same", stepup.UnenrolledEnroll, true, http.StatusInternalServerError, "", false},
		{"deny: the URL plays no part", stepup.UnenrolledDeny, false, http.StatusForbidden, "", false},
		{"allow: the URL plays no part", stepup.UnenrolledAllow, false, http.StatusOK, "unenrolled", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			provider := &fakeProvider{state: authsignal.StateAllow, unenrolled: true, url: "https://evil.example/enrol?t=1"}
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
				Provider: func(stepup.Provider) stepup.Provider { return provider },
				Config: func(c *stepup.Config) {
					for i := range c.Policies {
						c.Policies[i].Unenrolled, c.Policies[i].FailOpen = tc.choice, tc.failOpen
					}
				},
			})
			b := env.NewBrowser()
			b.Login("newbie")
			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			assert.Equal(t, tc.expect, resp.StatusCode, resp.Body)
			assert.Empty(t, resp.Header.Get("Location"))
			api := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, nil)
			assert.Equal(t, tc.expect, api.StatusCode, api.Body)
			assert.NotContains(t, api.Body, "evil")
			runs := env.Ledger.Runs("")
			if tc.expectHow == "" {
				assert.Empty(t, runs)
				return
			}
			require.Len(t, runs, 2)
			assert.Equal(t, tc.expectHow, runs[0].How)
		})
	}
}

// An enrolment is a challenge: it takes a slot of the per-user cap
// before Authsignal is asked, and keeps it.
func TestUnenrolledEnrolmentsCountAgainstTheCaps(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Emulator: func(c *emulator.Config) { c.AutoEnroll = false },
		Config: func(c *stepup.Config) {
			c.MaxChallengesPerUser = 2
			for i := range c.Policies {
				c.Policies[i].Unenrolled = stepup.UnenrolledEnroll
			}
		},
	})
	b := env.NewBrowser()
	b.Login("newbie")
	for range 2 {
		b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil))
	}
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, resp.Body)
	assert.Len(t, env.Emulator.Tracked(), 2, "refused before asking Authsignal")
}

// A pass without a second factor is an explicit policy choice, and it is
// never silent: it reaches the log at Warn even where allows are not
// logged. The deny refusal says unenrolled in its reason and its error.
func TestUnenrolledIsLogged(t *testing.T) {
	for _, tc := range []struct {
		choice string
		expect []string
	}{
		{stepup.UnenrolledAllow, []string{"level=WARN", "event=allow", "user=newbie", "reason=unenrolled", "state=ALLOW"}},
		{stepup.UnenrolledDeny, []string{"level=WARN", "event=refuse", "user=newbie", "reason=unenrolled", "no second factor enrolled"}},
	} {
		t.Run(tc.choice, func(t *testing.T) {
			var logs syncBuffer
			provider := &fakeProvider{state: authsignal.StateAllow, unenrolled: true}
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
				Provider: func(stepup.Provider) stepup.Provider { return provider },
				Config: func(c *stepup.Config) {
					c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
					for i := range c.Policies {
						c.Policies[i].Unenrolled = tc.choice
					}
				},
			})
			b := env.NewBrowser()
			b.Login("newbie")
			b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			line := logs.String()
			require.Equal(t, 1, strings.Count(line, "\n"), line)
			for _, want := range tc.expect {
				assert.Contains(t, line, want)
			}
			if tc.choice == stepup.UnenrolledDeny {
				assert.True(t, errors.Is(env.Events.LastRefusal(), stepup.ErrUnenrolled))
			}

			// An enrolled user's ALLOW is an Info line: nothing at Warn.
			provider.unenrolled = false
			before := logs.String()
			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, before, logs.String())
		})
	}
}
