package stepup_test

import (
	"context"
	"encoding/json"
	"errors"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// The end-to-end flows with the emulator run in the conformance suite
// (stepuptest, "methods and what the user approves"); these pin what the
// emulator cannot produce: a provider reporting no method or an unknown
// one, allowed methods that exclude the policy's, a second proof of the
// same challenge.

func TestNewChecksMethods(t *testing.T) {
	tests := []struct {
		name   string
		given  []string
		expect string // "" when accepted
	}{
		{name: "none: any method", given: nil},
		{name: "one", given: []string{stepup.MethodPasskey}},
		{name: "every name Authsignal's SDKs know", given: []string{"PASSKEY", "SECURITY_KEY", "AUTHENTICATOR_APP", "EMAIL_OTP",
			"EMAIL_MAGIC_LINK", "SMS", "WHATSAPP", "PUSH", "DEVICE", "RECOVERY_CODE", "VERIFF", "IPROOV", "IDVERSE", "PALM_BIOMETRICS_RR"}},
		{name: "lower case", given: []string{"passkey"}, expect: `unknown verification method "passkey"`},
		{name: "unknown", given: []string{"PASSKEY", "FIDO2"}, expect: `unknown verification method "FIDO2"`},
		{name: "empty name", given: []string{""}, expect: `unknown verification method ""`},
		{name: "space", given: []string{"SMS "}, expect: `unknown verification method "SMS "`},
		{name: "twice", given: []string{"SMS", "PASSKEY", "SMS"}, expect: `verification method "SMS" listed twice`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			policies := []stepup.Policy{
				{Method: http.MethodGet, Route: "/a", Action: "a"},
				{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Methods: tc.given},
			}
			cfg := validConfig()
			cfg.Policies = policies
			g, err := stepup.New(cfg)
			checkErr := stepup.CheckPolicies(policies)
			_, ruleErr := validGuard(t).NewRule("transfer", stepup.WithMethods(tc.given...))
			if tc.expect != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.expect)
				assert.Contains(t, err.Error(), "POST /transfer", "names the policy")
				assert.ErrorContains(t, checkErr, tc.expect)
				assert.ErrorContains(t, ruleErr, tc.expect)
				assert.Panics(t, func() { validGuard(t).Require("transfer", stepup.WithMethods(tc.given...)) })
				return
			}
			require.NoError(t, err)
			require.NoError(t, checkErr)
			require.NoError(t, ruleErr)
			rule, ok := g.Match(http.MethodPost, "/transfer")
			require.True(t, ok)
			assert.Equal(t, tc.given, rule.Policy().Methods)
		})
	}
}

// The table is the guard's own: changing the caller's slice after New
// changes nothing, and Policy() hands out a copy.
func TestMethodsAreCopied(t *testing.T) {
	methods := []string{stepup.MethodPasskey}
	cfg := validConfig()
	cfg.Policies = []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Methods: methods}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	methods[0] = stepup.MethodSMS
	rule, _ := g.Match(http.MethodPost, "/transfer")
	got := rule.Policy().Methods
	assert.Equal(t, []string{stepup.MethodPasskey}, got)
	got[0] = stepup.MethodSMS
	rule, _ = g.Match(http.MethodPost, "/transfer")
	assert.Equal(t, []string{stepup.MethodPasskey}, rule.Policy().Methods)
}

// methodsApp serves POST /transfer under Require("transfer", opts...) on
// a fake provider that challenges, behind a real server; its client keeps
// cookies and speaks JSON.
type methodsApp struct {
	p    *fakeProvider
	srv  *httptest.Server
	c    *http.Client
	runs int
}

func newMethodsApp(t *testing.T, p *fakeProvider, cfgs func(*stepup.Config), opts ...stepup.RequireOption) *methodsApp {
	t.Helper()
	p.record = true
	cfg := validConfig()
	cfg.Provider = p
	cfg.Logger = slog.New(slog.DiscardHandler)
	if cfgs != nil {
		cfgs(&cfg)
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	app := &methodsApp{p: p}
	mux := http.NewServeMux()
	mux.Handle("POST /transfer", g.Require("transfer", opts...)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		app.runs++
		v, _ := stepup.VerificationFrom(r.Context())
		_, _ = io.WriteString(w, string(v.How))
	})))
	app.srv = httptest.NewServer(mux)
	t.Cleanup(app.srv.Close)
	jar, _ := cookiejar.New(nil)
	app.c = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return app
}

// post sends the transfer as an API client (token: the Step-Up-Token) or,
// with browser, as a navigation; it returns status, body and the decoded
// JSON (nil when the body is not JSON).
func (a *methodsApp) post(t *testing.T, token string, browser bool) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, a.srv.URL+"/transfer", strings.NewReader(`{"amount": 5000, "to": "bob"}`))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if browser {
		req.Header.Set("Accept", "text/html")
	}
	if token != "" {
		req.Header.Set(stepup.TokenHeader, token)
	}
	resp, err := a.c.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	if json.Unmarshal(body, &doc) != nil {
		doc = nil
	}
	return resp.StatusCode, string(body), doc
}

// parkToken is the token the fake provider validates for the last track.
func (a *methodsApp) parkToken(t *testing.T) string {
	t.Helper()
	tracked := a.p.tracked()
	require.NotEmpty(t, tracked)
	return "ok." + tracked[len(tracked)-1].IdempotencyKey
}

// A proof made the wrong way is refused and spends nothing: the same
// challenge, proved again with an accepted method, runs once.
func TestWrongMethodKeepsTheChallengeForACorrectProof(t *testing.T) {
	tests := []struct {
		reported string
		expect   string // in the message
		hidden   string // never in the response
	}{
		{reported: "", expect: "You verified with no reported method, but this action accepts only a passkey or a security key."},
		{reported: "SMS", expect: "You verified with a text message code, but this action accepts only a passkey or a security key."},
		{reported: "PUSH", expect: "You verified with a push notification"},
		{reported: "Passkey", expect: "You verified with an unrecognised method", hidden: "Passkey"},
		{reported: "<script>FOO", expect: "You verified with an unrecognised method", hidden: "FOO"},
	}
	for _, tc := range tests {
		t.Run("reported "+tc.reported, func(t *testing.T) {
			p := &fakeProvider{state: authsignal.StateChallengeRequired, method: tc.reported}
			app := newMethodsApp(t, p, nil, stepup.WithMethods(stepup.MethodPasskey, stepup.MethodSecurityKey))
			status, _, doc := app.post(t, "", false)
			require.Equal(t, http.StatusUnauthorized, status)
			assert.Equal(t, []any{"PASSKEY", "SECURITY_KEY"}, doc["methods"])
			token := app.parkToken(t)

			for range 2 {
				status, body, doc := app.post(t, token, false)
				require.Equal(t, http.StatusForbidden, status, body)
				assert.Equal(t, "wrong_method", doc["error"])
				assert.Contains(t, doc["message"], tc.expect)
				if tc.hidden != "" {
					assert.NotContains(t, body, tc.hidden, "nothing the provider says is reflected")
				}
			}
			assert.Zero(t, app.runs)

			p.mu.Lock()
			p.method = stepup.MethodSecurityKey // the same challenge, proved with an accepted method
			p.mu.Unlock()
			status, body, _ := app.post(t, token, false)
			require.Equal(t, http.StatusOK, status, body)
			assert.Equal(t, "token", body)
			status, _, doc = app.post(t, token, false)
			assert.Equal(t, http.StatusConflict, status, "spent once")
			assert.Equal(t, "already_used", doc["error"])
			assert.Equal(t, 1, app.runs)
		})
	}
}

// A policy without Methods accepts any proof, a method reported or not.
func TestNoMethodsAcceptsAnyProof(t *testing.T) {
	for _, reported := range []string{"", "SMS", "SOMETHING_NEW"} {
		p := &fakeProvider{state: authsignal.StateChallengeRequired, method: reported}
		app := newMethodsApp(t, p, nil)
		status, _, doc := app.post(t, "", false)
		require.Equal(t, http.StatusUnauthorized, status)
		assert.NotContains(t, doc, "methods")
		status, body, _ := app.post(t, app.parkToken(t), false)
		require.Equal(t, http.StatusOK, status, "reported %q: %s", reported, body)
	}
}

// A Remember grant keeps the method it was earned with, known or not, and
// a method the guard does not know keeps nothing a Methods policy accepts.
func TestGrantRemembersItsMethod(t *testing.T) {
	tests := []struct {
		name     string
		reported string
		methods  []string
		expect   string // How of the second request; "" when challenged again
	}{
		{"no Methods: a grant by any method", "SMS", nil, "remembered"},
		{"no Methods: a grant by a method the guard does not know", "SOMETHING_NEW", nil, "remembered"},
		{"no Methods: a grant with no method reported", "", nil, "remembered"},
		{"Methods: a grant by an accepted method", "PASSKEY", []string{"PASSKEY"}, "remembered"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := &fakeProvider{state: authsignal.StateChallengeRequired, method: tc.reported}
			app := newMethodsApp(t, p, nil, stepup.WithRemember(time.Minute), stepup.WithMethods(tc.methods...))
			status, _, _ := app.post(t, "", false)
			require.Equal(t, http.StatusUnauthorized, status)
			status, body, _ := app.post(t, app.parkToken(t), false)
			require.Equal(t, http.StatusOK, status, body)
			status, body, _ = app.post(t, "", false)
			require.Equal(t, http.StatusOK, status, body)
			assert.Equal(t, tc.expect, body)
			assert.Len(t, p.tracked(), 1, "not tracked again")
		})
	}
}

// When Authsignal lists the methods it allows for the challenge and none
// is accepted, no challenge could succeed: a 403 before anything is
// parked, for a challenge and for an enrolment alike. Without the list the
// guard relies on the check at the proof.
func TestMethodUnavailable(t *testing.T) {
	tests := []struct {
		name       string
		unenrolled bool
		allowed    []string
		expect     int
	}{
		{"none of the allowed accepted", false, []string{"EMAIL_OTP", "SMS"}, http.StatusForbidden},
		{"enrolment, none of the allowed accepted", true, []string{"EMAIL_OTP", "SMS"}, http.StatusForbidden},
		{"one of the allowed accepted", false, []string{"SMS", "PASSKEY"}, http.StatusUnauthorized},
		{"the last of the allowed accepted", false, []string{"SMS", "EMAIL_OTP", "SECURITY_KEY"}, http.StatusUnauthorized},
		{"no list: the check at the proof decides", false, nil, http.StatusUnauthorized},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			state := authsignal.StateChallengeRequired
			if tc.unenrolled {
				state = authsignal.StateAllow
			}
			p := &fakeProvider{state: state, unenrolled: tc.unenrolled, allowed: tc.allowed}
			var events []stepup.Event
			app := newMethodsApp(t, p, func(c *stepup.Config) {
				c.OnEvent = func(_ context.Context, ev stepup.Event) { events = append(events, ev) }
			}, stepup.WithMethods(stepup.MethodPasskey, stepup.MethodSecurityKey), stepup.WithUnenrolled(stepup.UnenrolledEnroll))
			status, body, doc := app.post(t, "", false)
			require.Equal(t, tc.expect, status, body)
			if tc.expect != http.StatusForbidden {
				return
			}
			assert.Equal(t, "method_unavailable", doc["error"])
			assert.Contains(t, doc["message"], "a passkey or a security key")
			require.NotEmpty(t, events)
			last := events[len(events)-1]
			assert.Equal(t, stepup.EventRefuse, last.Type)
			assert.True(t, errors.Is(last.Err, stepup.ErrMethodUnavailable), "%v", last.Err)
			for _, ev := range events {
				assert.NotEqual(t, stepup.EventChallenge, ev.Type, "nothing parked")
			}
			assert.Zero(t, app.runs)
		})
	}
}

// A confirmation page that fails to render is a clean 500: no challenge
// is left parked, nothing runs, nothing of the page is written.
func TestConfirmPageThatFails(t *testing.T) {
	p := &fakeProvider{state: authsignal.StateChallengeRequired}
	broken := template.Must(template.New("x").Parse(`<p id="leak">{{.Missing}}</p>`))
	store := stepup.NewMemoryStore()
	app := newMethodsApp(t, p, func(c *stepup.Config) { c.ConfirmPage, c.Store = broken, store },
		stepup.WithAttributes(stepup.Attribute{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: stepup.TypeNumber, Display: true}))
	status, body, _ := app.post(t, "", true)
	require.Equal(t, http.StatusInternalServerError, status, body)
	assert.NotContains(t, body, "leak")
	assert.Zero(t, store.Len(), "the park was taken back")
	assert.Zero(t, app.runs)
}

// The package's page shows numbers as written, not in exponent form.
func TestDisplayValueText(t *testing.T) {
	tests := []struct {
		given  any
		expect string
	}{
		{"bob", "bob"},
		{5000.0, "5000"},
		{1234567.25, "1234567.25"},
		{1e21, "1000000000000000000000"},
		{true, "true"},
		{nil, "<nil>"},
	}
	for _, tc := range tests {
		assert.Equal(t, tc.expect, stepup.DisplayValue{Name: "x", Value: tc.given}.Text())
	}
}
