package stepuptest

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// judgedPolicy protects "/open" (every method) under the action "judged",
// which the emulator always challenges, with attrs and custom: whatever the
// values, the request is challenged, and what runs after the challenge must
// be what was judged.
func judgedPolicy(a Adapter, remember time.Duration, custom func(*http.Request, []byte) (map[string]any, error),
	attrs ...stepup.Attribute) Options {
	return Options{Config: func(c *stepup.Config) {
		c.Policies = append(a.Policies(), stepup.Policy{Method: "*", Route: "/open", Action: "judged",
			Remember: remember, Attributes: attrs, Custom: custom})
	}}
}

// headerAmount is a header attribute: X-Amount, a number.
var headerAmount = stepup.Attribute{Name: "amount", From: stepup.FromHeader, Key: "X-Amount", Type: "number"}

// tierFromHeader is a Custom hook reading a header no attribute binds.
func tierFromHeader(r *http.Request, _ []byte) (map[string]any, error) {
	return map[string]any{"tier": r.Header.Get("X-Tier")}, nil
}

// agentHook is a Custom hook reading the User-Agent, which a replay takes
// from the live callback request.
func agentHook(r *http.Request, _ []byte) (map[string]any, error) {
	return map[string]any{"agent": r.UserAgent()}, nil
}

// runJudged pins threat 20: a request that runs on an earlier judgment
// (the token retry, the callback's replay, the GET pass) presents exactly
// what the rules judged, or nothing runs; Verification.Attributes carries
// the judged values; a Remember grant carries none.
func runJudged(t *testing.T, a Adapter) {
	apiToken := func(t *testing.T, b *Browser, resp *Response) string {
		t.Helper()
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		var doc struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		return Param(b.Complete(doc.URL), "token")
	}
	type request struct {
		contentType, body string
		header            http.Header
	}
	with := func(token string, h http.Header) http.Header {
		out := http.Header{"Accept": {"application/json"}}
		if token != "" {
			out.Set(stepup.TokenHeader, token)
		}
		for k, vs := range h {
			out[k] = vs
		}
		return out
	}

	// The attacks the review found: the retry carries the challenged
	// request's token, method, path, query and body bytes, and changes
	// only what the binding did not cover. Each is refused with a 403 and
	// nothing runs; the challenged request itself then runs with the same
	// token, with the judged values in its Verification.
	retries := []struct {
		name              string
		opts              func(Adapter) Options
		judged, retry     request
		expectAttributes  map[string]any
		expectHeader, val string // a header the handler sees, and its value
	}{
		{
			name:   "a header attribute changed",
			opts:   func(a Adapter) Options { return judgedPolicy(a, 0, nil, headerAmount) },
			judged: request{"application/json", `{"to":"bob"}`, http.Header{"X-Amount": {"5000"}}},
			retry:  request{"application/json", `{"to":"bob"}`, http.Header{"X-Amount": {"1000000"}}},
			// the handler acts on the header: what it sees is what was judged
			expectAttributes: map[string]any{"amount": 5000.0}, expectHeader: "X-Amount", val: "5000",
		},
		{
			name:             "a header attribute respelled",
			opts:             func(a Adapter) Options { return judgedPolicy(a, 0, nil, headerAmount) },
			judged:           request{"application/json", `{"to":"bob"}`, http.Header{"X-Amount": {"5000"}}},
			retry:            request{"application/json", `{"to":"bob"}`, http.Header{"X-Amount": {"5e3"}}},
			expectAttributes: map[string]any{"amount": 5000.0}, expectHeader: "X-Amount", val: "5000",
		},
		{
			name:   "the body's Content-Type switched",
			opts:   func(a Adapter) Options { return judgedPolicy(a, 0, nil, formAmount) },
			judged: request{"text/plain", "amount=1000000", nil}, // no form: the rules see no amount
			retry:  request{Form, "amount=1000000", nil},         // a form: FormValue("amount") is 1e6
			// nothing judged: an empty map
			expectAttributes: map[string]any{}, expectHeader: "Content-Type", val: "text/plain",
		},
		{
			name:             "a Custom hook's input changed",
			opts:             func(a Adapter) Options { return judgedPolicy(a, 0, tierFromHeader) },
			judged:           request{"application/json", `{"to":"bob"}`, http.Header{"X-Tier": {"bronze"}}},
			retry:            request{"application/json", `{"to":"bob"}`, http.Header{"X-Tier": {"gold"}}},
			expectAttributes: map[string]any{"tier": "bronze"}, expectHeader: "X-Tier", val: "bronze",
		},
	}
	for _, tc := range retries {
		t.Run("API retry: "+tc.name, func(t *testing.T) {
			env := NewEnv(t, a, tc.opts(a))
			b := env.NewBrowser()
			b.Login("alice")
			judged := func(token string, r request) *Response {
				h := with(token, r.header)
				h.Set("Content-Type", r.contentType)
				return b.Do(http.MethodPost, "/open?x=1", r.contentType, r.body, h)
			}
			token := apiToken(t, b, judged("", tc.judged))

			resp := judged(token, tc.retry)
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Contains(t, resp.Body, "not_judged")
			assert.Empty(t, env.Ledger.Runs("open"), "the handler ran on what was not judged")
			assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrStepUpFailed)

			resp = judged(token, tc.judged)
			require.Equal(t, http.StatusOK, resp.StatusCode, "the challenged request itself still runs: %s", resp.Body)
			runs := env.Ledger.Runs("open")
			require.Len(t, runs, 1)
			assert.Equal(t, "token", runs[0].How)
			assert.Equal(t, tc.expectAttributes, nonNilMap(runs[0].Attributes))
			assert.Equal(t, tc.val, runs[0].Header.Get(tc.expectHeader))
		})
	}

	// The replay presents the headers a header attribute read: they are
	// parked with the request, whatever Config.ReplayHeaders says.
	t.Run("replay presents the judged header", func(t *testing.T) {
		env := NewEnv(t, a, judgedPolicy(a, 0, nil, headerAmount))
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/open", Form, "to=bob", http.Header{"X-Amount": {"5000"}}))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("open")
		require.Len(t, runs, 1)
		assert.Equal(t, "challenge", runs[0].How)
		assert.Equal(t, "5000", runs[0].Header.Get("X-Amount"))
		assert.Equal(t, map[string]any{"amount": 5000.0}, runs[0].Attributes)
	})

	// A header that is never replayed (Authorization here) cannot be
	// presented again: a request judged on it is parked, but its replay is
	// refused, and nothing runs.
	t.Run("replay refused when it cannot present a judged header", func(t *testing.T) {
		env := NewEnv(t, a, judgedPolicy(a, 0, nil, stepup.Attribute{Name: "auth", From: stepup.FromHeader, Key: "Authorization"}))
		b := env.NewBrowser()
		b.Login("alice")
		callback := b.Complete(b.Challenge(b.Do(http.MethodPost, "/open", Form, "to=bob", http.Header{"Authorization": {"Basic eDp5"}})))
		resp := b.Do(http.MethodGet, callback, "", "", http.Header{"Authorization": {"Basic eDp5"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("open"))
	})

	// A replay takes the User-Agent (and cookies, forwarding headers) from
	// the live callback: a Custom hook reading them must get what it got
	// when the request was judged, or nothing runs and nothing is spent.
	t.Run("replay refused when a Custom hook's input changed", func(t *testing.T) {
		env := NewEnv(t, a, judgedPolicy(a, 0, agentHook))
		b := env.NewBrowser()
		b.Login("alice")
		callback := b.Complete(b.Challenge(b.Do(http.MethodPost, "/open", Form, "to=bob", http.Header{"User-Agent": {"judged/1"}})))
		resp := b.Do(http.MethodGet, callback, "", "", http.Header{"User-Agent": {"other/2"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("open"), "the replay ran on what was not judged")
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrStepUpFailed)

		resp = b.Do(http.MethodGet, callback, "", "", http.Header{"User-Agent": {"judged/1"}})
		require.Equal(t, http.StatusOK, resp.StatusCode, "nothing was spent: the same callback runs it: %s", resp.Body)
		runs := env.Ledger.Runs("open")
		require.Len(t, runs, 1)
		assert.Equal(t, map[string]any{"agent": "judged/1"}, runs[0].Attributes)
	})

	// A GET pass opens the parked GET only when it presents what was
	// judged; otherwise it is no pass, and the GET is judged afresh.
	t.Run("GET pass bound to what was judged", func(t *testing.T) {
		env := NewEnv(t, a, judgedPolicy(a, 0, nil, headerAmount))
		b := env.NewBrowser()
		b.Login("alice")
		judged := http.Header{"X-Amount": {"5000"}}
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodGet, "/open?x=1", "", "", judged))))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		loc := resp.Header.Get("Location")
		require.Equal(t, "/open?x=1", loc)

		b.Challenge(b.Do(http.MethodGet, loc, "", "", http.Header{"X-Amount": {"1000000"}}))
		assert.Empty(t, env.Ledger.Runs("open"), "the pass opened a GET that was not judged")

		resp = b.Do(http.MethodGet, loc, "", "", judged)
		require.Equal(t, http.StatusOK, resp.StatusCode, "the pass still opens the judged GET: %s", resp.Body)
		runs := env.Ledger.Runs("open")
		require.Len(t, runs, 1)
		assert.Equal(t, "pass", runs[0].How)
		assert.Equal(t, map[string]any{"amount": 5000.0}, runs[0].Attributes)
	})

	// A Remember grant is per user and action, by design: it carries no
	// judged attributes (see SECURITY.md, the binding table).
	t.Run("a Remember grant carries no attributes", func(t *testing.T) {
		env := NewEnv(t, a, judgedPolicy(a, 5*time.Minute, nil, headerAmount))
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/open", Form, "to=bob", http.Header{"X-Amount": {"5000"}}))))
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		resp = b.Do(http.MethodPost, "/open", Form, "to=bob", http.Header{"X-Amount": {"7"}})
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		runs := env.Ledger.Runs("open")
		require.Len(t, runs, 2)
		assert.Equal(t, map[string]any{"amount": 5000.0}, runs[0].Attributes)
		assert.Equal(t, "remembered", runs[1].How)
		assert.True(t, runs[1].Attributes == nil, "a grant's Attributes are nil, not %v", runs[1].Attributes)
	})
}

// formAmount is a form attribute: amount, a number.
var formAmount = stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}

// nonNilMap is m, or an empty map for nil.
func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}
