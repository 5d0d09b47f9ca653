package stepup_test

// Regression tests for bugs found by the test work, each fixed.

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestRegressionPathAttributeMissingUnderMiddleware(t *testing.T) {
	env := newPolicyEnv(t, attributeApp, []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "acct", From: stepup.FromPath, Key: "acct"}}}})
	b := env.NewBrowser()
	b.Login("alice")
	got, resp := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-7", stepuptest.Form, "amount=5", nil})
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, map[string]any{"acct": "acc-7"}, got.Custom)
}

func TestRegressionParsePoliciesPanicsOnTaggedEmptyNode(t *testing.T) {
	for _, doc := range []string{"policies: !\n", "policies:\n  - attributes: !foo\n"} {
		assert.NotPanics(t, func() { _, _ = stepup.ParsePolicies([]byte(doc)) }, "%q", doc)
	}
}

func TestRegressionWildcardOriginsThatMatchTooMuch(t *testing.T) {
	for _, o := range []string{"https://*", "https://*evil.example", "https://*."} {
		cfg := validConfig()
		cfg.ChallengeOrigins = []string{o}
		_, err := stepup.New(cfg)
		assert.Error(t, err, "New should reject origin %q", o)
	}
	for _, o := range []string{"https://*.authsignal.com", "http://127.0.0.1:8787", "https://*.eu.example.com:8443"} {
		cfg := validConfig()
		cfg.ChallengeOrigins = []string{o}
		_, err := stepup.New(cfg)
		assert.NoError(t, err, o)
	}
}

func TestRegressionCheckServeMuxFalsePositiveForStarPolicyOnMethodPattern(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("POST /transfer", http.NotFoundHandler())
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = []stepup.Policy{{Method: "*", Route: "/transfer", Action: "transfer"}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	g.Middleware(mux).ServeHTTP(rec, httptest.NewRequest("POST", "/transfer", strings.NewReader("")))
	require.Equal(t, http.StatusForbidden, rec.Code, "the policy does protect POST /transfer")
	assert.NoError(t, g.CheckServeMux(mux), "yet CheckServeMux reports it")
}

func TestRegressionHeadPolicyOnGetPatternIsDeadAndUnreported(t *testing.T) {
	mux := http.NewServeMux()
	served := 0
	mux.HandleFunc("GET /report", func(http.ResponseWriter, *http.Request) { served++ })
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = []stepup.Policy{{Method: "HEAD", Route: "/report", Action: "report"}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	g.Middleware(mux).ServeHTTP(rec, httptest.NewRequest("HEAD", "/report", nil))
	assert.Zero(t, served, "HEAD /report ran past a HEAD policy whose provider blocks everything (status %d)", rec.Code)
	assert.NoError(t, g.CheckServeMux(mux), "the GET pattern serves HEAD, and the HEAD policy now applies")
}

func TestRegressionGuardKeepsCallersSlices(t *testing.T) {
	fp := &fakeProvider{state: authsignal.StateAllow, record: true}
	cfg := validConfig()
	cfg.Provider = fp
	cfg.Policies = []stepup.Policy{{Method: "POST", Route: "/t", Action: "t",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount"}}}}
	cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	g, err := stepup.New(cfg)
	require.NoError(t, err)

	cfg.Policies[0].Action = "changed"
	assert.Equal(t, "t", g.Policies()[0].Action, "Policies() aliases Config.Policies")

	r, _ := g.Match("POST", "/t")
	r.Policy().Attributes[0].Key = "changed"
	r, _ = g.Match("POST", "/t")
	assert.Equal(t, "amount", r.Policy().Attributes[0].Key, "Rule.Policy() aliases the compiled table")

	cfg.TrustedProxies[0] = netip.MustParsePrefix("0.0.0.0/0")
	mux := http.NewServeMux()
	mux.HandleFunc("POST /t", func(http.ResponseWriter, *http.Request) {})
	req := httptest.NewRequest("POST", "/t", strings.NewReader(""))
	req.RemoteAddr = "198.51.100.9:1234"
	req.Header.Set("X-Forwarded-For", "6.6.6.6")
	g.Middleware(mux).ServeHTTP(httptest.NewRecorder(), req)
	require.Len(t, fp.tracked(), 1)
	assert.Equal(t, "198.51.100.9", fp.tracked()[0].IPAddress, "TrustedProxies aliased: a later change moves the trust boundary")
}

// The value Authsignal's rules judge must be the value the handler acts
// on, however the handler reads the request.
func TestAttributesAgreeWithWhatHandlersRead(t *testing.T) {
	form := []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}}}
	jsonPolicy := []stepup.Policy{{Method: http.MethodPost, Route: "/api/pay/{acct}", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromJSON, Key: "payment.amount", Type: "number"}}}}
	tests := []struct {
		name     string
		policies []stepup.Policy
		req      request
		expect   any // the amount the rules saw
		status   int
	}{
		{"form: an amount only in the query is seen, as r.FormValue sees it", form,
			request{http.MethodPost, "/pay/a?amount=5000", stepuptest.Form, "to=bob", nil}, 5000.0, http.StatusSeeOther},
		{"form: the body's amount wins in r.FormValue but not in r.URL.Query: refused", form,
			request{http.MethodPost, "/pay/a?amount=5000", stepuptest.Form, "amount=10", nil}, nil, http.StatusBadRequest},
		{"json: keys match case-insensitively, as encoding/json does", jsonPolicy,
			request{http.MethodPost, "/api/pay/a", "application/json", `{"Payment":{"AMOUNT":5000}}`, nil}, 5000.0, http.StatusSeeOther},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newPolicyEnv(t, attributeApp, tc.policies)
			b := env.NewBrowser()
			b.Login("alice")
			if tc.status == http.StatusBadRequest {
				resp := b.Do(tc.req.method, tc.req.path, tc.req.contentType, tc.req.body, tc.req.header)
				assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
				assert.Empty(t, env.Emulator.Tracked())
				assert.Empty(t, env.Ledger.Runs(""))
				return
			}
			got, resp := trackOne(t, env, b, tc.req)
			assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
			assert.Equal(t, tc.expect, got.Custom["amount"])
		})
	}

	for _, body := range []string{
		`{"payment":{"amount":10,"AMOUNT":5000}}`,
		`{"payment":{"amount":10,"amount":5000}}`,
		`{"payment":{"amount":10},"Payment":{"amount":5000}}`,
	} {
		t.Run("json: a repeated key is refused before tracking: "+body, func(t *testing.T) {
			env := newPolicyEnv(t, attributeApp, jsonPolicy)
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/api/pay/a", "application/json", body, nil)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
			assert.Empty(t, env.Emulator.Tracked())
			assert.Empty(t, env.Ledger.Runs(""))
		})
	}

	t.Run("the handler can read what the rules judged", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, form)
		b := env.NewBrowser()
		b.Login("alice")
		require.Equal(t, http.StatusOK, b.Do(http.MethodPost, "/pay/a", stepuptest.Form, "amount=50", nil).StatusCode)
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/pay/a", stepuptest.Form, "amount=5000", nil)))
		require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, map[string]any{"amount": 50.0}, runs[0].Attributes)
		assert.Equal(t, "allow", runs[0].How)
		assert.Equal(t, map[string]any{"amount": 5000.0}, runs[1].Attributes)
		assert.Equal(t, "challenge", runs[1].How)
	})
}

func TestErrorHandlerReceivesTheRefusal(t *testing.T) {
	var got error
	env := stepuptest.NewEnv(t, serveMux, stepuptest.Options{Config: func(c *stepup.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(http.StatusTeapot)
		}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	assert.Equal(t, http.StatusTeapot, b.Do(http.MethodPost, "/block", stepuptest.Form, "x=1", nil).StatusCode)
	var se *stepup.Error
	require.ErrorAs(t, got, &se)
	assert.Equal(t, http.StatusForbidden, se.Status)
	assert.Equal(t, "blocked", se.Code)
	assert.ErrorIs(t, got, stepup.ErrBlocked)
}
