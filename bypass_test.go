package stepup_test

// Bypass attempts against a ServeMux application: SECURITY.md threats 1
// (policy and router disagree about the path), 2 (method override), 8
// (open redirect / token sent to the wrong host), 11 (header smuggling on
// replay) and 14 (spoofed risk signals). Requests whose target a Go
// client would clean are written by hand on a raw connection.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// guardedApp is the conformance application on a ServeMux behind
// guard.Middleware: the suite's policy table, every protected route
// registered with its method.
var guardedApp = muxAdapter(func(mux *http.ServeMux, _ *stepup.Guard, h stepuptest.Handlers) { guardedRoutes(mux, h) })

func guardedRoutes(mux *http.ServeMux, h stepuptest.Handlers) {
	mux.Handle("POST /transfer", h.Transfer)
	mux.Handle("POST /api/transfer", h.APITrans)
	mux.Handle("PUT /profile", h.Profile)
	mux.Handle("DELETE /items/{id}", h.DeleteItem)
	mux.Handle("GET /report", h.Report)
	mux.Handle("GET /admin", h.Admin)
	mux.Handle("/open", h.Open)
}

// requireApp protects the same routes with Require, one by one. It runs
// with an empty policy table, or Middleware would enforce the suite's
// table in front of it as well.
var requireApp = muxAdapter(func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers) {
	amount := func(from stepup.Source) stepup.RequireOption {
		return stepup.WithAttributes(stepup.Attribute{Name: "amount", From: from, Key: "amount", Type: "number"})
	}
	mux.Handle("POST /transfer", g.Require("transfer", amount(stepup.FromForm))(h.Transfer))
	mux.Handle("POST /api/transfer", g.Require("transfer", amount(stepup.FromJSON))(h.APITrans))
	mux.Handle("PUT /profile", g.Require("profile")(h.Profile))
	mux.Handle("DELETE /items/{id}", g.Require("deleteItem")(h.DeleteItem))
	mux.Handle("GET /report", g.Require("report")(h.Report))
	mux.Handle("GET /admin", g.Require("admin", stepup.RememberFor(5*time.Minute))(h.Admin))
	mux.Handle("/open", h.Open)
})

// mounting is one way of protecting the application's routes.
type mounting struct {
	name  string
	app   stepuptest.Adapter
	table bool // the suite's policy table (Middleware), or none (Require)
}

var mountings = []mounting{{"Middleware", guardedApp, true}, {"Require", requireApp, false}}

func (m mounting) newEnv(t *testing.T) *stepuptest.Env {
	t.Helper()
	if m.table {
		return stepuptest.NewEnv(t, m.app, stepuptest.Options{})
	}
	return newPolicyEnv(t, m.app, nil)
}

// sendRaw writes one HTTP/1.1 request exactly as given, with the
// browser's cookies, and keeps the cookies the answer sets.
func sendRaw(t *testing.T, env *stepuptest.Env, b *stepuptest.Browser, method, target string, header http.Header, body string) *stepuptest.Response {
	t.Helper()
	u, err := url.Parse(env.Server.URL)
	require.NoError(t, err)
	conn, err := net.Dial("tcp", u.Host)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.SetDeadline(time.Now().Add(10*time.Second)))

	var sb strings.Builder
	fmt.Fprintf(&sb, "%s %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n", method, target, u.Host)
	var cookies []string
	for _, c := range b.Jar.Cookies(u) {
		cookies = append(cookies, c.Name+"="+c.Value)
	}
	if len(cookies) > 0 {
		fmt.Fprintf(&sb, "Cookie: %s\r\n", strings.Join(cookies, "; "))
	}
	if header.Get("Accept") == "" {
		sb.WriteString("Accept: text/html\r\n")
	}
	for k, vs := range header {
		for _, v := range vs {
			fmt.Fprintf(&sb, "%s: %s\r\n", k, v)
		}
	}
	if header.Get("Transfer-Encoding") == "" {
		fmt.Fprintf(&sb, "Content-Length: %d\r\n", len(body))
	}
	sb.WriteString("\r\n")
	sb.WriteString(body)
	_, err = io.WriteString(conn, sb.String())
	require.NoError(t, err)

	resp, err := http.ReadResponse(bufio.NewReader(conn), &http.Request{Method: method})
	require.NoError(t, err)
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	b.Jar.SetCookies(u, resp.Cookies())
	return &stepuptest.Response{Response: resp, Body: string(data)}
}

// challenged reports whether resp sends the browser to the emulator's
// challenge page.
func challenged(env *stepuptest.Env, resp *stepuptest.Response) bool {
	return resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(resp.Header.Get("Location"), env.Emulator.URL+"/challenge")
}

type variant struct {
	method, target string
	body           string
	handler        string // the protected handler the variant aims at
	// expect is "challenge", "not served", or "cleaned": the mux answers
	// with a redirect to the clean path. Behind Middleware the guard
	// decides first, on the pattern the mux reports for that redirect,
	// and challenges; under Require the mux redirects before any guard
	// runs. Either way the handler does not run.
	expect string
}

// pathVariants are the spellings of protected routes that a second
// matcher could disagree about. The transfer amount is above the
// emulator's threshold: the real route is challenged.
var pathVariants = []variant{
	{"POST", "/transfer", "amount=5000", "transfer", "challenge"},
	{"POST", "/transfer/", "amount=5000", "transfer", "not served"},
	{"POST", "//transfer", "amount=5000", "transfer", "not served"},
	{"POST", "/./transfer", "amount=5000", "transfer", "cleaned"},
	{"POST", "/x/../transfer", "amount=5000", "transfer", "cleaned"},
	{"POST", "/%2e/transfer", "amount=5000", "transfer", "not served"},
	{"POST", "/%74ransfer", "amount=5000", "transfer", "challenge"},
	{"POST", "/TRANSFER", "amount=5000", "transfer", "not served"},
	{"POST", "/Transfer", "amount=5000", "transfer", "not served"},
	{"POST", "/transfer%2F", "amount=5000", "transfer", "not served"},
	{"POST", "/transfer;x=1", "amount=5000", "transfer", "not served"},
	{"POST", "/transfer%00", "amount=5000", "transfer", "not served"},
	{"POST", "/transfer?amount=1", "amount=5000", "transfer", "not served"}, // query and body disagree: 400
	{"POST", "http://other.example/transfer", "amount=5000", "transfer", "challenge"},
	{"post", "/transfer", "amount=5000", "transfer", "not served"},
	{"PUT", "/transfer", "amount=5000", "transfer", "not served"},
	{"CONNECT", "/transfer", "amount=5000", "transfer", "not served"},
	{"POST", "*", "amount=5000", "transfer", "not served"},
	{"GET", "/report", "", "report", "challenge"},
	{"HEAD", "/report", "", "report", "challenge"},
	{"GET", "/report/", "", "report", "not served"},
	{"GET", "//report", "", "report", "not served"},
	{"HEAD", "/./report", "", "report", "cleaned"},
	{"GET", "/REPORT", "", "report", "not served"},
	{"DELETE", "/items/1", "", "deleteItem", "challenge"},
	{"DELETE", "/items/1/../2", "", "deleteItem", "cleaned"},
	{"DELETE", "/items/%2e%2e", "", "deleteItem", "challenge"},
	{"DELETE", "/items/1%2F..%2F..%2Fadmin", "", "deleteItem", "challenge"},
	{"DELETE", "/items/", "", "deleteItem", "not served"},
	{"POST", "/items/1", "", "deleteItem", "not served"},
	{"PUT", "/profile/", "{}", "profile", "not served"},
	{"PUT", "/./profile", "{}", "profile", "cleaned"},
}

func TestPathVariantsNeverReachAProtectedHandlerUnchallenged(t *testing.T) {
	for _, m := range mountings {
		t.Run(m.name, func(t *testing.T) {
			env := m.newEnv(t)
			for _, v := range pathVariants {
				t.Run(v.method+" "+v.target, func(t *testing.T) {
					b := env.NewBrowser()
					b.Login("alice")
					before := len(env.Ledger.Runs(v.handler))
					resp := sendRaw(t, env, b, v.method, v.target, http.Header{"Content-Type": {stepuptest.Form}}, v.body)
					assert.Len(t, env.Ledger.Runs(v.handler), before, "%s %s reached %s unchallenged (status %d)",
						v.method, v.target, v.handler, resp.StatusCode)

					expect := v.expect
					if expect == "cleaned" {
						if !challenged(env, resp) {
							assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
							assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/"), resp.Header.Get("Location"))
							assert.NotContains(t, resp.Header.Get("Location"), "/.")
							return
						}
						expect = "challenge"
					}
					switch expect {
					case "challenge":
						require.True(t, challenged(env, resp), "expected a challenge, got %d %q", resp.StatusCode, resp.Body)
						// Completing the challenge runs the handler at
						// most once, and only as a verified replay.
						b.Get(b.Complete(resp.Header.Get("Location")))
						runs := env.Ledger.Runs(v.handler)[before:]
						assert.LessOrEqual(t, len(runs), 1)
						for _, r := range runs {
							assert.Contains(t, []string{"challenge", "pass"}, r.How)
						}
					case "not served":
						assert.False(t, challenged(env, resp))
						assert.False(t, resp.StatusCode >= 200 && resp.StatusCode < 300, "status %d", resp.StatusCode)
					}
				})
			}
		})
	}
}

func TestMethodOverrideDoesNotChangeTheDecision(t *testing.T) {
	overrides := []http.Header{
		{"X-Http-Method-Override": {"GET"}},
		{"X-Http-Method": {"GET"}},
		{"X-Method-Override": {"GET"}},
	}
	for _, m := range mountings {
		t.Run(m.name, func(t *testing.T) {
			env := m.newEnv(t)
			b := env.NewBrowser()
			b.Login("alice")

			t.Run("a POST that claims to be a GET is still the POST", func(t *testing.T) {
				for _, h := range overrides {
					h.Set("Content-Type", stepuptest.Form)
					resp := sendRaw(t, env, b, http.MethodPost, "/transfer?_method=GET", h, "amount=5000&_method=GET")
					assert.True(t, challenged(env, resp), "%v: status %d", h, resp.StatusCode)
				}
				for _, tr := range env.Emulator.Tracked() {
					assert.Equal(t, "transfer", tr.Action)
				}
				assert.Empty(t, env.Ledger.Runs("transfer"))
			})
			t.Run("an override cannot reach a handler of another method", func(t *testing.T) {
				tracked := len(env.Emulator.Tracked())
				for _, tc := range []struct{ method, target, override, handler string }{
					{http.MethodPost, "/items/1", "DELETE", "deleteItem"},
					{http.MethodGet, "/items/1?_method=DELETE", "DELETE", "deleteItem"},
					{http.MethodPost, "/report?_method=GET", "GET", "report"},
					{http.MethodGet, "/transfer?_method=POST", "POST", "transfer"},
					{http.MethodPost, "/profile", "PUT", "profile"},
				} {
					resp := sendRaw(t, env, b, tc.method, tc.target, http.Header{
						"X-Http-Method-Override": {tc.override}, "Content-Type": {stepuptest.Form}}, "_method="+tc.override)
					assert.Equal(t, http.StatusMethodNotAllowed, resp.StatusCode, "%s %s", tc.method, tc.target)
					assert.Empty(t, env.Ledger.Runs(tc.handler), tc.handler)
				}
				assert.Len(t, env.Emulator.Tracked(), tracked, "nothing tracked for a route the mux does not serve")
			})
		})
	}
}

func TestCheckServeMux(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		policies []stepup.Policy
		expect   []string // nil: no error
	}{
		{"every policy on a method pattern",
			[]string{"POST /transfer", "DELETE /items/{id}", "GET /report", "/open"},
			[]stepup.Policy{
				{Method: "POST", Route: "/transfer", Action: "transfer"},
				{Method: "DELETE", Route: "/items/{id}", Action: "deleteItem"},
				{Method: "GET", Route: "/report", Action: "report"},
			}, nil},
		{"* policy on a method-less pattern",
			[]string{"/admin/", "/transfer"},
			[]stepup.Policy{{Method: "*", Route: "/admin/", Action: "admin"}, {Method: "*", Route: "/transfer", Action: "transfer"}}, nil},
		{"host-less pattern with a host in the mux too",
			[]string{"POST /transfer", "POST admin.example/transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}}, nil},
		{"method policy on a method-less pattern",
			[]string{"/transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}},
			[]string{"policy POST /transfer", `"/transfer"`, "every method"}},
		{"route the mux does not have",
			[]string{"POST /transfer"},
			[]stepup.Policy{{Method: "POST", Route: "/wire", Action: "wire"}},
			[]string{"policy POST /wire", `routes it to ""`}},
		{"method the mux does not serve there",
			[]string{"POST /profile"},
			[]stepup.Policy{{Method: "PUT", Route: "/profile", Action: "profile"}},
			[]string{"policy PUT /profile"}},
		{"wildcard named differently",
			[]string{"DELETE /items/{itemID}"},
			[]stepup.Policy{{Method: "DELETE", Route: "/items/{id}", Action: "deleteItem"}},
			[]string{"policy DELETE /items/{id}", `"DELETE /items/{itemID}"`}},
		{"route inside a subtree pattern",
			[]string{"GET /admin/"},
			[]stepup.Policy{{Method: "GET", Route: "/admin/users", Action: "admin"}},
			[]string{"policy GET /admin/users", `"GET /admin/"`}},
		{"echo syntax on a ServeMux",
			[]string{"DELETE /items/{id}"},
			[]stepup.Policy{{Method: "DELETE", Route: "/items/:id", Action: "deleteItem"}},
			[]string{"policy DELETE /items/:id"}},
		{"trailing slash differs",
			[]string{"POST /transfer/"},
			[]stepup.Policy{{Method: "POST", Route: "/transfer", Action: "transfer"}},
			[]string{"policy POST /transfer"}},
		{"every mistake is reported",
			[]string{"/transfer", "GET /report"},
			[]stepup.Policy{
				{Method: "POST", Route: "/transfer", Action: "transfer"},
				{Method: "GET", Route: "/report", Action: "report"},
				{Method: "POST", Route: "/wire", Action: "wire"},
			},
			[]string{"policy POST /transfer", "policy POST /wire"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			for _, p := range tc.patterns {
				mux.Handle(p, http.NotFoundHandler())
			}
			cfg := validConfig()
			cfg.Policies = tc.policies
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			err = g.CheckServeMux(mux)
			if tc.expect == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
			assert.NotContains(t, err.Error(), "policy GET /report", "a good policy is not reported")
		})
	}
}

func TestChallengeURLOnlyOnAnAllowedOrigin(t *testing.T) {
	// stepuptest covers a foreign host and credentials in the URL; these
	// are the near misses of the default origins, https://authsignal.com
	// and https://*.authsignal.com.
	tests := []struct {
		url   string
		allow bool
	}{
		{"https://authsignal.com/challenge?t=1", true},
		{"https://eu.authsignal.com/challenge?t=1", true},
		{"https://a.b.authsignal.com/challenge", true},
		{"https://EU.AuthSignal.COM/challenge", true},
		{"http://eu.authsignal.com/challenge", false},
		{"https://eu.authsignal.com:8443/challenge", false},
		{"https://authsignal.com.evil.example/challenge", false},
		{"https://evilauthsignal.com/challenge", false},
		{"https://.authsignal.com/challenge", false},
		{"https://evil.example/.authsignal.com", false},
		{"https://evil.example?.authsignal.com", false},
		{"https://evil.example#.authsignal.com", false},
		{"https://evil.example\\.authsignal.com/", false},
		{"https://eu.authsignal.com@evil.example/", false},
		{"//eu.authsignal.com/challenge", false},
		{"/challenge", false},
		{"javascript://eu.authsignal.com/%0aalert(1)", false},
		{"https://eu.authsignal.com/challenge\r\nSet-Cookie: a=b", false},
		{"https://eu.authsignal.com/challenge\x00", false},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			provider := &fakeProvider{state: authsignal.StateChallengeRequired, url: tc.url}
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
				Config:   func(c *stepup.Config) { c.ChallengeOrigins = nil },
				Provider: func(stepup.Provider) stepup.Provider { return provider },
			})
			b := env.NewBrowser()
			b.Login("alice")
			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			if tc.allow {
				require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
				assert.Equal(t, tc.url, resp.Header.Get("Location"))
			} else {
				assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, "fails closed")
				assert.Empty(t, resp.Header.Get("Location"))
			}
			api := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, nil)
			if tc.allow {
				assert.Equal(t, http.StatusUnauthorized, api.StatusCode)
			} else {
				assert.Equal(t, http.StatusServiceUnavailable, api.StatusCode)
				assert.NotContains(t, api.Body, "evil", "the URL is not handed to API clients either")
			}
			assert.Empty(t, env.Ledger.Runs(""))
		})
	}
}

func TestActionCodeComesFromThePolicyOnly(t *testing.T) {
	for _, m := range mountings {
		t.Run(m.name, func(t *testing.T) {
			env := m.newEnv(t)
			b := env.NewBrowser()
			b.Login("alice")
			h := http.Header{
				"Content-Type":     {stepuptest.Form},
				"X-Stepup-Action":  {"admin"},
				"X-Action":         {"admin"},
				"Step-Up-Action":   {"admin"},
				"X-Original-Url":   {"/admin"},
				"X-Rewrite-Url":    {"/admin"},
				"X-Forwarded-Path": {"/admin"},
			}
			resp := sendRaw(t, env, b, http.MethodPost, "/transfer?action=admin&acr_values=admin", h, "amount=5000&action=admin")
			require.True(t, challenged(env, resp), "status %d", resp.StatusCode)
			tracked := env.Emulator.Tracked()
			require.Len(t, tracked, 1)
			assert.Equal(t, "transfer", tracked[0].Action)

			// The replay runs the parked route, whatever the headers said.
			b.Get(b.Complete(resp.Header.Get("Location")))
			runs := env.Ledger.Runs("transfer")
			require.Len(t, runs, 1)
			assert.Equal(t, "/transfer", runs[0].Path)
			assert.Empty(t, env.Ledger.Runs("admin"))
		})
	}
}

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

func TestChunkedBodyReplayedWithItsLength(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")
	chunked := "5\r\namoun\r\n6\r\nt=5000\r\n7\r\n&to=bob\r\n0\r\n\r\n"
	resp := sendRaw(t, env, b, http.MethodPost, "/transfer", http.Header{
		"Content-Type": {stepuptest.Form}, "Transfer-Encoding": {"chunked"}, "Te": {"trailers"},
		"X-Unlisted": {"x"}, "Keep-Alive": {"timeout=5"}, "Upgrade": {"h2c"}}, chunked)
	require.True(t, challenged(env, resp), "status %d %q", resp.StatusCode, resp.Body)
	tracked := env.Emulator.Tracked()
	require.Len(t, tracked, 1)
	assert.Equal(t, 5000.0, tracked[0].Custom["amount"], "the attribute read the dechunked body")

	require.Equal(t, http.StatusOK, b.Get(b.Complete(resp.Header.Get("Location"))).StatusCode)
	runs := env.Ledger.Runs("transfer")
	require.Len(t, runs, 1)
	assert.Equal(t, "amount=5000&to=bob", string(runs[0].Body))
	assert.Equal(t, int64(len("amount=5000&to=bob")), runs[0].ContentLength)
	for _, k := range []string{"Transfer-Encoding", "Te", "Keep-Alive", "Upgrade", "X-Unlisted"} {
		assert.Empty(t, runs[0].Header.Get(k), k)
	}
}
