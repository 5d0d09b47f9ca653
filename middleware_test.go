package stepup_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
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

func TestRequirePanicsOnABadRule(t *testing.T) {
	g, err := stepup.New(validConfig())
	require.NoError(t, err)

	tests := []struct {
		name   string
		action string
		opts   []stepup.RequireOption
		expect string // in the panic's error
	}{
		{"empty action", "", nil, `""`},
		{"action with a space", "my action", nil, `"my action"`},
		{"action of 65 characters", strings.Repeat("a", 65), nil, strings.Repeat("a", 65)},
		{"unicode action", "transfér", nil, `"transfér"`},
		{"negative WithRemember", "admin", []stepup.RequireOption{stepup.WithRemember(-time.Minute)}, "negative remember"},
		{"bad attribute", "pay", []stepup.RequireOption{stepup.WithAttributes(stepup.Attribute{Name: "amount", From: "body", Key: "amount"})}, `unknown source "body"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := panicValue(func() { g.Require(tc.action, tc.opts...) })
			require.NotNil(t, v, "Require must panic")
			perr, ok := v.(error)
			require.True(t, ok, "the panic carries an error, got %T", v)
			assert.True(t, strings.HasPrefix(perr.Error(), "stepup: require"), perr.Error())
			assert.Contains(t, perr.Error(), tc.expect)

			// NewRule reports the same mistake as an error.
			_, err := g.NewRule(tc.action, tc.opts...)
			require.Error(t, err)
			assert.Equal(t, perr.Error(), err.Error())
		})
	}

	t.Run("a good rule does not panic", func(t *testing.T) {
		assert.NotPanics(t, func() {
			g.Require(strings.Repeat("a", 64), stepup.WithRemember(time.Minute), stepup.WithFailOpen(),
				stepup.WithAttributes(stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}))
		})
	})
}

func panicValue(f func()) (v any) {
	defer func() { v = recover() }()
	f()
	return nil
}

func TestMatchUsesTheCompiledTable(t *testing.T) {
	cfg := validConfig()
	cfg.Policies = []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
		{Method: http.MethodGet, Route: "/report", Action: "report"},
		{Method: "*", Route: "/admin/", Action: "admin", Remember: time.Minute},
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)

	tests := []struct {
		method, route string
		expect        string // "" when not protected
	}{
		{"POST", "/transfer", "transfer"},
		{"PUT", "/transfer", ""},
		{"GET", "/transfer", ""},
		{"POST", "/transfer/", ""},
		{"POST", "/Transfer", ""},
		{"post", "/transfer", ""},
		{"GET", "/report", "report"},
		{"HEAD", "/report", "report"}, // a GET policy covers HEAD
		{"POST", "/report", ""},
		{"GET", "/admin/", "admin"},
		{"DELETE", "/admin/", "admin"},
		{"CONNECT", "/admin/", "admin"},
		{"GET", "/admin", ""},
		{"GET", "", ""},
		{"", "", ""},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%s %q", tc.method, tc.route), func(t *testing.T) {
			rule, ok := g.Match(tc.method, tc.route)
			assert.Equal(t, tc.expect != "", ok)
			if ok {
				assert.Equal(t, tc.expect, rule.Policy().Action)
			}
		})
	}
}

func TestMatchIsUnaffectedByTheCallerChangingItsPolicies(t *testing.T) {
	// New compiles the table: changing the caller's slice afterwards does
	// not change what is protected or what is tracked.
	cfg := validConfig()
	cfg.Policies = []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
		Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"}}}}
	g, err := stepup.New(cfg)
	require.NoError(t, err)

	cfg.Policies[0].Action = "changed"
	cfg.Policies[0].Route = "/changed"
	cfg.Policies[0].Attributes[0].Key = "changed"

	rule, ok := g.Match(http.MethodPost, "/transfer")
	require.True(t, ok)
	assert.Equal(t, "transfer", rule.Policy().Action)
	assert.Equal(t, "amount", rule.Policy().Attributes[0].Key)
	_, ok = g.Match(http.MethodPost, "/changed")
	assert.False(t, ok)
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
	mux.Handle("GET /admin", g.Require("admin", stepup.WithRemember(5*time.Minute))(h.Admin))
	mux.Handle("/open", h.Open)
})

// mounting is one way of protecting the application's routes.
type mounting struct {
	name  string
	app   stepuptest.Adapter
	table bool // the suite's policy table (Middleware), or none (Require)
}

var mountings = []mounting{{"Middleware", guardedApp, true}, {"Require", requireApp, false}, {"ServeMux", guardServeMux, true}}

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
						// The mux redirects to the clean path and runs
						// nothing; the guard neither parks nor tracks
						// a request no handler would serve.
						assert.False(t, challenged(env, resp), "an unclean path is redirected, not challenged")
						assert.Equal(t, http.StatusTemporaryRedirect, resp.StatusCode)
						assert.True(t, strings.HasPrefix(resp.Header.Get("Location"), "/"), resp.Header.Get("Location"))
						assert.NotContains(t, resp.Header.Get("Location"), "/.")
						return
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

// FuzzProtectedRoutes sends arbitrary request lines to a ServeMux
// application guarded by Middleware and, separately, by Require, with a
// provider that blocks every action: no protected handler may ever run,
// whatever the method and request target.
func FuzzProtectedRoutes(f *testing.F) {
	var ran []string
	handler := func(name string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = append(ran, name) })
	}
	policies := []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
		{Method: http.MethodPut, Route: "/profile", Action: "profile"},
		{Method: http.MethodDelete, Route: "/items/{id}", Action: "deleteItem"},
		{Method: http.MethodGet, Route: "/report", Action: "report"},
		{Method: "*", Route: "/admin/", Action: "admin"},
		{Method: http.MethodGet, Route: "/files/{path...}", Action: "files"},
	}
	cfg := validConfig()
	cfg.Provider = &fakeProvider{state: authsignal.StateBlock}
	cfg.Policies = policies
	g, err := stepup.New(cfg)
	require.NoError(f, err)

	byTable := http.NewServeMux()
	byRoute := http.NewServeMux()
	for _, p := range policies {
		pattern := p.Method + " " + p.Route
		if p.Method == "*" {
			pattern = p.Route
		}
		byTable.Handle(pattern, handler(p.Action))
		byRoute.Handle(pattern, g.Require(p.Action)(handler(p.Action)))
	}
	for _, mux := range []*http.ServeMux{byTable, byRoute} {
		mux.Handle("/open/", handler("open"))
		mux.Handle("GET /{$}", handler("open"))
	}
	byTable.Handle("GET /stepup/callback", g.Callback(g.Middleware(byTable)))
	require.NoError(f, g.CheckServeMux(byTable))
	apps := []http.Handler{g.Middleware(byTable), byRoute}

	for _, v := range pathVariants {
		f.Add(v.method, v.target, "")
	}
	f.Add("GET", "/admin", "")
	f.Add("OPTIONS", "/admin/x/../../admin/", "X-HTTP-Method-Override: GET")
	f.Add("GET", "/files/a/../../report", "")
	f.Add("GET", "/open/../report", "")
	f.Add("GET", "/open/%2e%2e/report", "")
	f.Add("GET", "/open/..%2freport", "")
	f.Add("CONNECT", "app.example:443", "")
	f.Add("GET", "http://app.example/report", "")
	f.Add("GET", "/report", "Host: other.example")

	f.Fuzz(func(t *testing.T, method, target, header string) {
		raw := method + " " + target + " HTTP/1.1\r\nHost: app.example\r\n"
		if header != "" {
			raw += header + "\r\n"
		}
		for _, app := range apps {
			req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw + "\r\n")))
			if err != nil {
				return
			}
			req.RemoteAddr = "192.0.2.1:1234"
			ran = ran[:0]
			rec := httptest.NewRecorder()
			app.ServeHTTP(rec, req)
			for _, name := range ran {
				if name != "open" {
					t.Fatalf("%s %s reached %q past a BLOCK (status %d)", method, target, name, rec.Code)
				}
			}
			if rec.Code >= 500 {
				t.Fatalf("%s %s: status %d", method, target, rec.Code)
			}
		}
	})
}

// SplitMethods tells a route checker which methods of one handler a policy
// protects and which it leaves open, each sorted; HEAD counts as its GET
// policy's.
func TestSplitMethodsSortsProtectedFromOpen(t *testing.T) {
	cfg := validConfig()
	cfg.Policies = []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
		{Method: http.MethodGet, Route: "/report", Action: "report"},
		{Method: "*", Route: "/admin", Action: "admin"},
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	tests := []struct {
		route           string
		methods         []string
		protected, open []string
	}{
		{"/transfer", []string{"PUT", "POST", "GET"}, []string{"POST"}, []string{"GET", "PUT"}},
		{"/report", []string{"HEAD", "GET"}, []string{"GET", "HEAD"}, nil},
		{"/admin", []string{"DELETE", "GET"}, []string{"DELETE", "GET"}, nil},
		{"/open", []string{"POST", "GET"}, nil, []string{"GET", "POST"}},
		{"/transfer", nil, nil, nil},
	}
	for _, tc := range tests {
		protected, open := g.SplitMethods(tc.route, tc.methods)
		assert.Equal(t, tc.protected, protected, "%s %v", tc.route, tc.methods)
		assert.Equal(t, tc.open, open, "%s %v", tc.route, tc.methods)
	}
}

// A challenge resumes the request at its own target: a target a Location
// header could not carry back is refused before the caps count it or
// Authsignal is asked, not after a challenge was opened for nothing.
func TestAnUnresumableTargetIsRefusedBeforeTracking(t *testing.T) {
	for _, target := range []string{"/transfer?note=caf\xc3\xa9", "/transfer?a=\x7f"} {
		t.Run(fmt.Sprintf("%q", target), func(t *testing.T) {
			env := mountings[0].newEnv(t)
			b := env.NewBrowser()
			b.Login("alice")
			tracked := len(env.Emulator.Tracked())
			resp := sendRaw(t, env, b, http.MethodPost, target, http.Header{"Content-Type": {stepuptest.Form}}, "amount=5000&to=bob")
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "%q", resp.Body)
			assert.Len(t, env.Emulator.Tracked(), tracked, "nothing is tracked")
			assert.Empty(t, env.Ledger.Runs("transfer"))
		})
	}
	t.Run("a printable query is tracked and challenged", func(t *testing.T) {
		env := mountings[0].newEnv(t)
		b := env.NewBrowser()
		b.Login("alice")
		resp := sendRaw(t, env, b, http.MethodPost, "/transfer?note=caf%C3%A9", http.Header{"Content-Type": {stepuptest.Form}}, "amount=5000&to=bob")
		assert.True(t, challenged(env, resp), "status %d %q", resp.StatusCode, resp.Body)
		assert.Len(t, env.Emulator.Tracked(), 1)
	})
}
