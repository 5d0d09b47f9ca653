package stepuptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// bindingPolicies add "/open" (every method) to the suite's table under the
// action "transfer", judged by a JSON amount, so that one action protects
// two paths and several methods: a token proved for one of them must not
// open another.
func bindingPolicies(a Adapter) []stepup.Policy {
	return append(a.Policies(), stepup.Policy{Method: "*", Route: "/open", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: "number"}}})
}

// alteredValidate asks the real provider, then changes its verdict: a
// provider that lies about one field only, so that exactly one check of the
// guard stands between the lie and the handler.
type alteredValidate struct {
	stepup.Provider
	before func(*authsignal.ValidateRequest)
	after  func(*authsignal.ValidateResponse)
}

func (p alteredValidate) Validate(ctx context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	asked := req
	if p.before != nil {
		p.before(&req)
	}
	resp, err := p.Provider.Validate(ctx, req)
	if err == nil && resp != nil && p.after != nil {
		resp.UserID, resp.Action = asked.UserID, asked.Action
		p.after(resp)
	}
	return resp, err
}

// runBinding pins each binding check of the guard with the attack it stops.
func runBinding(t *testing.T, a Adapter) {
	apiChallenge := func(t *testing.T, b *Browser, method, path, body string) string {
		t.Helper()
		resp := b.API(method, path, body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		var doc map[string]any
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		return Param(b.Complete(doc["url"].(string)), "token")
	}
	const body = `{"amount": 5000, "to": "bob"}`

	// A token proved for one request must not run another request of the
	// same action: each retry differs from the challenged one in exactly
	// one of method, path and query; the challenged request then still runs
	// with the same token, so the refusal was the binding's.
	retries := []struct {
		name                  string
		challenged, other     string // "METHOD path"
		handler, otherHandler string
	}{
		{"API token bound to the method", "POST /open?x=1", "PUT /open?x=1", "open", "open"},
		{"API token bound to the path", "POST /open", "POST /api/transfer", "open", "apiTransfer"},
		{"API token bound to the query", "POST /open?x=1", "POST /open?x=2", "open", "open"},
	}
	for _, tc := range retries {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.Policies = bindingPolicies(a) }})
			b := env.NewBrowser()
			b.Login("alice")
			cm, cp, _ := strings.Cut(tc.challenged, " ")
			om, op, _ := strings.Cut(tc.other, " ")
			token := apiChallenge(t, b, cm, cp, body)

			resp := b.API(om, op, body, http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs(tc.otherHandler), "%s ran on a token proved for %s", tc.other, tc.challenged)

			resp = b.API(cm, cp, body, http.Header{stepup.TokenHeader: {token}})
			require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Len(t, env.Ledger.Runs(tc.handler), 1)
		})
	}

	// A GET pass opens the parked URL only: not the same route with another
	// query, nor another route of the same action.
	passes := []struct{ name, other, otherHandler string }{
		{"GET pass bound to the query", "/report?month=1999-01", "report"},
		{"GET pass bound to the path", "/open?month=2026-11", "open"},
	}
	for _, tc := range passes {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
				c.Policies = append(a.Policies(), stepup.Policy{Method: "*", Route: "/open", Action: "report"})
			}})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Get(b.Complete(b.Challenge(b.Get("/report?month=2026-11"))))
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
			require.Equal(t, "/report?month=2026-11", resp.Header.Get("Location"))

			b.Challenge(b.Get(tc.other))
			assert.Empty(t, env.Ledger.Runs(tc.otherHandler), "a pass for /report?month=2026-11 opened %s", tc.other)

			require.Equal(t, http.StatusOK, b.Get("/report?month=2026-11").StatusCode, "the pass itself still works")
			assert.Len(t, env.Ledger.Runs("report"), 1)
			var resumed bool
			for _, ev := range env.Events.Of(stepup.EventReplay) {
				resumed = resumed || ev.Reason == "pass"
			}
			assert.True(t, resumed, "the callback reports the GET it resumed with a pass")
		})
	}

	// A provider that says "valid" about everything but one field: each
	// field alone must stop the request, at the callback and at the API
	// retry, although the token is bound to the very park.
	verdicts := []struct {
		name  string
		after func(*authsignal.ValidateResponse)
	}{
		{"isValid false although CHALLENGE_SUCCEEDED", func(r *authsignal.ValidateResponse) { r.IsValid = false }},
		{"valid but CHALLENGE_FAILED", func(r *authsignal.ValidateResponse) { r.State = authsignal.StateChallengeFailed }},
		{"valid but REVIEW_SUCCEEDED", func(r *authsignal.ValidateResponse) { r.State = authsignal.StateReviewSucceeded }},
		{"valid but no idempotency key", func(r *authsignal.ValidateResponse) { r.IdempotencyKey = "" }},
	}
	for _, v := range verdicts {
		lie := func(p stepup.Provider) stepup.Provider { return alteredValidate{Provider: p, after: v.after} }
		t.Run("callback: "+v.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{Provider: lie})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
		t.Run("API retry: "+v.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{Provider: lie})
			b := env.NewBrowser()
			b.Login("alice")
			token := apiChallenge(t, b, http.MethodPost, "/api/transfer", body)
			resp := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		})
	}

	// The record names its user: a provider that vouches for whoever asks
	// must not let alice redeem bob's identical API challenge.
	t.Run("API retry with another user's record", func(t *testing.T) {
		var validated atomic.Int32
		env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider {
			return alteredValidate{Provider: p,
				before: func(r *authsignal.ValidateRequest) { r.UserID = ""; validated.Add(1) },
				after:  func(*authsignal.ValidateResponse) {}}
		}})
		alice, bob := env.NewBrowser(), env.NewBrowser()
		alice.Login("alice")
		bob.Login("bob")
		token := apiChallenge(t, bob, http.MethodPost, "/api/transfer", body)
		resp := alice.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		assert.Equal(t, int32(1), validated.Load(), "the provider vouched; the record refused")

		resp = bob.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusOK, resp.StatusCode, "bob's own retry still runs: %s", resp.Body)
		runs := env.Ledger.Runs("apiTransfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "bob", runs[0].User)
	})

	// The 401 tells an API client how long its challenge stays open:
	// ParkTTL, in seconds.
	t.Run("API challenge lifetime", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.API(http.MethodPost, "/api/transfer", body, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
		var doc struct {
			ExpiresIn int `json:"expiresIn"`
		}
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		assert.Equal(t, 600, doc.ExpiresIn)
		b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
		var kinds []string
		for _, ev := range env.Events.Of(stepup.EventChallenge) {
			kinds = append(kinds, ev.Reason)
		}
		assert.Equal(t, []string{"api", "browser"}, kinds, "the challenge event says which kind it was")
	})

	// A GET policy covers HEAD, and so does the GET's single-use pass.
	t.Run("HEAD uses the GET pass", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Get("/report?month=2026-11"))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		head := b.Do(http.MethodHead, "/report?month=2026-11", "", "", nil)
		if head.StatusCode == http.StatusMethodNotAllowed {
			// A router that serves no HEAD on a GET route (echo): the
			// pass lets the request through the guard to the router's
			// 405, and nothing runs.
			assert.Empty(t, env.Ledger.Runs("report"))
			return
		}
		require.Equal(t, http.StatusOK, head.StatusCode)
		runs := env.Ledger.Runs("report")
		require.Len(t, runs, 1)
		assert.Equal(t, "pass", runs[0].How)
	})

	// Several resumed GETs wait side by side: each pass opens its own URL,
	// using one leaves the others, up to five at once.
	t.Run("five passes wait side by side", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		var next []string
		for i := range 5 {
			resp := b.Get(b.Complete(b.Challenge(b.Get(fmt.Sprintf("/report?month=2026-%02d", i+1)))))
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
			next = append(next, resp.Header.Get("Location"))
		}
		for _, loc := range next {
			require.Equal(t, http.StatusOK, b.Get(loc).StatusCode, "the pass for %s", loc)
		}
		assert.Len(t, env.Ledger.Runs("report"), 5)
	})

	// A Remember grant opens only the routes whose policy remembers: a
	// route sharing the action code without Remember is challenged anyway.
	t.Run("a grant opens only remembering routes", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.Policies = append(a.Policies(), stepup.Policy{Method: "*", Route: "/open", Action: "admin"})
		}})
		b := env.NewBrowser()
		b.Login("alice")
		require.Equal(t, http.StatusSeeOther, b.Get(b.Complete(b.Challenge(b.Get("/admin")))).StatusCode)
		require.Equal(t, http.StatusOK, b.Get("/admin").StatusCode, "the grant opens /admin")
		b.Challenge(b.Do(http.MethodPost, "/open", Form, "x=1", nil))
		b.Challenge(b.Get("/open"))
		assert.Empty(t, env.Ledger.Runs("open"), "the grant does not open a route that does not remember")
	})

	// An API client that keeps cookies gets the Remember grant of a
	// remembering route from its token retry, as a browser does from the
	// callback.
	t.Run("a token retry on a remembering route gives the grant", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		token := apiChallenge(t, b, http.MethodGet, "/admin", "")
		require.Equal(t, http.StatusOK, b.API(http.MethodGet, "/admin", "", http.Header{stepup.TokenHeader: {token}}).StatusCode)
		again := b.API(http.MethodGet, "/admin", "", nil)
		require.Equal(t, http.StatusOK, again.StatusCode, again.Body)
		runs := env.Ledger.Runs("admin")
		require.Len(t, runs, 2)
		assert.Equal(t, "remembered", runs[1].How)
	})

	// Without Config.SessionID the per-session cap counts by the guard's
	// own cookie, for API challenges too when the client keeps cookies.
	t.Run("per-session cap for an API client that keeps cookies", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxChallengesPerSession = 2 }})
		b := env.NewBrowser()
		b.Login("alice")
		for range 2 {
			require.Equal(t, http.StatusUnauthorized, b.API(http.MethodPost, "/api/transfer", body, nil).StatusCode)
		}
		assert.Equal(t, http.StatusTooManyRequests, b.API(http.MethodPost, "/api/transfer", body, nil).StatusCode)
		other := env.NewBrowser()
		other.Login("alice")
		assert.Equal(t, http.StatusUnauthorized, other.API(http.MethodPost, "/api/transfer", body, nil).StatusCode,
			"another session of the user has its own count")
	})

	// The challenge URL is given to whoever opens the page: a token in its
	// query never redeems, even when the provider's token field differs.
	t.Run("a token from the challenge URL's query never redeems", func(t *testing.T) {
		env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider { return urlOnlyToken{p} }})
		attacker, victim := env.NewBrowser(), env.NewBrowser()
		attacker.Login("alice")
		victim.Login("alice")
		challenge := attacker.Challenge(attacker.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
		urlToken := Param(challenge, "token")
		require.NotEmpty(t, urlToken)
		cb := victim.Complete(challenge)
		resp := attacker.Get(WithParam(cb, "token", urlToken))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})

	// The park id in the callback URL is 22 characters of base64url; any
	// other shape is refused as malformed (400) before the session or the
	// Store is read, while a well-formed unknown id is a plain "no" (403).
	t.Run("callback park id shape", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		base := strings.Repeat("A", 21)
		for _, c := range "azAZ09-_" {
			resp := b.Get(CallbackPath + "?token=t&park=" + base + string(c))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, "park id ending in %q is well formed", c)
		}
		for _, id := range []string{base + "`", base + "{", base + "@", base + "[", base + "/", base + ":",
			base + ".", base + "~", base + "%2B", base, base + "AA", ""} {
			resp := b.Get(CallbackPath + "?token=t&park=" + id)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "park id %q is malformed", id)
		}
	})

	// A token longer than 8 KiB is refused without asking the provider.
	t.Run("token length limit", func(t *testing.T) {
		var asked atomic.Int32
		env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider {
			return alteredValidate{Provider: p, before: func(*authsignal.ValidateRequest) { asked.Add(1) }}
		}})
		b := env.NewBrowser()
		b.Login("alice")
		for _, n := range []int{8192, 8193} {
			before := asked.Load()
			resp := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {strings.Repeat("t", n)}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode)
			if n <= 8192 {
				assert.Equal(t, before+1, asked.Load(), "a token of %d bytes is validated", n)
			} else {
				assert.Equal(t, before, asked.Load(), "a token of %d bytes is refused unasked", n)
			}
		}
		assert.Empty(t, env.Ledger.Runs("apiTransfer"))
	})
}

// urlOnlyToken hides the track response's token field: the only copy of
// the token the page was opened with is in the challenge URL's query.
type urlOnlyToken struct{ stepup.Provider }

func (p urlOnlyToken) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	resp, err := p.Provider.Track(ctx, user, action, req)
	if resp != nil {
		resp.Token = ""
	}
	return resp, err
}
