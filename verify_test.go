package stepup_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestStepUpTokenFromTheRequestProvesNothingByItself(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")

	// A completed challenge for another action: PUT /profile.
	profile := b.API(http.MethodPut, "/profile", `{}`, nil)
	require.Equal(t, http.StatusUnauthorized, profile.StatusCode, profile.Body)
	challengeURL := stepupChallengeURL(t, profile.Body)
	profileToken := stepuptest.Param(b.Complete(challengeURL), "token")

	for name, token := range map[string]string{
		"garbage":                    "garbage",
		"another action's token":     profileToken,
		"the challenge page's token": stepuptest.Param(challengeURL, "token"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs("transfer"))
			assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		})
	}
	// The profile token still does what it was issued for.
	resp := b.API(http.MethodPut, "/profile", `{}`, http.Header{stepup.TokenHeader: {profileToken}})
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
}

// stepupChallengeURL reads the challenge URL from an API challenge body.
func stepupChallengeURL(t *testing.T, body string) string {
	t.Helper()
	var doc struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.NotEmpty(t, doc.URL)
	return doc.URL
}

// Threat 20 with per-route protection (Require): an API retry whose header
// attribute or Custom hook input differs from the challenged request's is
// refused and runs nothing; the challenged request runs, and its
// Verification carries the judged values.
func TestRetryWithRequirePresentsWhatWasJudged(t *testing.T) {
	app := muxAdapter(func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers) {
		mux.Handle("POST /pay", g.Require("judged",
			stepup.WithAttributes(stepup.Attribute{Name: "fee", From: stepup.FromHeader, Key: "x-fee", Type: stepup.TypeNumber}),
			stepup.WithCustom(func(r *http.Request, _ []byte) (map[string]any, error) {
				return map[string]any{"desk": r.Header.Get("X-Desk")}, nil
			}))(h.Transfer))
	})
	judged := http.Header{"X-Fee": {"12"}, "X-Desk": {"retail"}}
	for name, retry := range map[string]http.Header{
		"header attribute":  {"X-Fee": {"99"}, "X-Desk": {"retail"}},
		"header sent twice": {"X-Fee": {"12", "99"}, "X-Desk": {"retail"}},
		"Custom hook input": {"X-Fee": {"12"}, "X-Desk": {"treasury"}},
	} {
		t.Run(name, func(t *testing.T) {
			env := stepuptest.NewEnv(t, app, stepuptest.Options{})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.API(http.MethodPost, "/pay", `{"to":"bob"}`, judged)
			require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
			token := stepuptest.Param(b.Complete(stepupChallengeURL(t, resp.Body)), "token")

			retry.Set(stepup.TokenHeader, token)
			resp = b.API(http.MethodPost, "/pay", `{"to":"bob"}`, retry)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Contains(t, resp.Body, `"not_judged"`)
			assert.Empty(t, env.Ledger.Runs("transfer"))
			refusals := env.Events.Of(stepup.EventRefuse)
			require.NotEmpty(t, refusals, "the refusal is reported")
			assert.ErrorContains(t, refusals[len(refusals)-1].Err, "not what was judged")

			judged.Set(stepup.TokenHeader, token)
			resp = b.API(http.MethodPost, "/pay", `{"to":"bob"}`, judged)
			judged.Del(stepup.TokenHeader)
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			runs := env.Ledger.Runs("transfer")
			require.Len(t, runs, 1)
			assert.Equal(t, map[string]any{"fee": 12.0, "desk": "retail"}, runs[0].Attributes)
		})
	}
}

// A challenge recorded without a judged digest (written by an earlier
// version, or planted in the Store) redeems nothing: what was judged is
// unknown, so nothing can run on it.
func TestRetryOfAChallengeWithoutJudgedDigestIsRefused(t *testing.T) {
	keys := [][]byte{[]byte("a 32-byte record key for testing")}
	p := &fakeProvider{state: authsignal.StateChallengeRequired, record: true}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Provider: func(stepup.Provider) stepup.Provider { return p },
		Config: func(c *stepup.Config) {
			c.ChallengeOrigins = []string{"https://eu.authsignal.com"}
			c.RecordKeys = keys
		},
	})
	b := env.NewBrowser()
	b.Login("alice")
	const body = `{"amount": 5000}`
	challenge := func() string {
		t.Helper()
		resp := b.API(http.MethodPost, "/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		tracked := p.tracked()
		return tracked[len(tracked)-1].IdempotencyKey
	}
	retry := func(park string) *stepuptest.Response {
		return b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {"ok." + park}})
	}

	require.Equal(t, http.StatusOK, retry(challenge()).StatusCode, "a challenge the guard recorded redeems")

	park := challenge()
	stored, err := env.Store.Get(t.Context(), park)
	require.NoError(t, err)
	rec, err := stepup.OpenRecord(keys, park, stored)
	require.NoError(t, err)
	require.Len(t, rec.Judged, 32)
	rec.Judged = nil // as if an earlier version had written it, under today's keys
	resealed, err := stepup.SealRecord(keys, rec)
	require.NoError(t, err)
	require.NoError(t, env.Store.Delete(t.Context(), park))
	require.NoError(t, env.Store.Put(t.Context(), resealed))
	resp := retry(park)
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
	assert.Len(t, env.Ledger.Runs("apiTransfer"), 1, "only the first retry ran")
}

// A Remember grant judges the user, not the request: the guard reads no
// body on its way (a body over MaxBodyBytes, which could never be parked,
// goes through under a grant) and hands the handler the request's own.
func TestGrantReadsNoBody(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Config: func(c *stepup.Config) {
		c.MaxBodyBytes = 1024
		for i := range c.Policies {
			if c.Policies[i].Route == "/transfer" {
				c.Policies[i].Remember = 5 * time.Minute
			}
		}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	require.Equal(t, http.StatusOK, b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))).StatusCode)
	tracked := len(env.Emulator.Tracked())

	large := "amount=5000&pad=" + strings.Repeat("x", 4096)
	resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, large, nil)
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, tracked, len(env.Emulator.Tracked()), "remembered: not tracked")
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 2)
	assert.Equal(t, "remembered", runs[1].How)
	assert.Equal(t, large, string(runs[1].Body), "the handler reads the request's own body")
}
