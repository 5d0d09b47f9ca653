package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// refusedAttrs marks a request the guard must refuse with 400 before
// tracking: the rules would otherwise judge a value a handler reads
// differently, or "absent" where a handler sees a value.
var refusedAttrs = map[string]any{"refused": true}

func TestAttributesReachAuthsignal(t *testing.T) {
	const form, jsonCT = stepuptest.Form, "application/json"
	formPolicy := stepup.Policy{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer", Attributes: []stepup.Attribute{
		{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
		{Name: "to", From: stepup.FromForm, Key: "to"},
		{Name: "instant", From: stepup.FromForm, Key: "instant", Type: "bool"},
		{Name: "ref", From: stepup.FromQuery, Key: "ref"},
		{Name: "channel", From: stepup.FromHeader, Key: "X-Channel"},
	}}
	jsonPolicy := stepup.Policy{Method: http.MethodPost, Route: "/api/pay/{acct}", Action: "transfer", Attributes: []stepup.Attribute{
		{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: "number"},
		{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
		{Name: "country", From: stepup.FromJSON, Key: "payee.address.country"},
		{Name: "instant", From: stepup.FromJSON, Key: "options.instant", Type: "bool"},
		{Name: "memo", From: stepup.FromJSON, Key: "memo", Type: "string"},
	}}
	env := newPolicyEnv(t, attributeApp, []stepup.Policy{formPolicy, jsonPolicy})
	b := env.NewBrowser()
	b.Login("alice")

	tests := []struct {
		name   string
		when   request
		expect map[string]any // custom attributes as the emulator received them; nil for none
	}{
		{"form number, string and bool",
			request{http.MethodPost, "/pay/acc-1", form, "amount=250.5&to=bob&instant=true", nil},
			map[string]any{"amount": 250.5, "to": "bob", "instant": true}},
		{"form: the same value twice",
			request{http.MethodPost, "/pay/acc-1", form, "amount=10&amount=10", nil},
			map[string]any{"amount": 10.0}},
		{"form: two values are refused", request{http.MethodPost, "/pay/acc-1", form, "amount=10&amount=9999", nil}, refusedAttrs},
		{"form number with spaces is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=+%2012+", nil}, refusedAttrs},
		{"form number that is not a number is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=12abc&to=bob", nil}, refusedAttrs},
		{"NaN is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=NaN&to=bob", nil}, refusedAttrs},
		{"Inf is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=-Inf", nil}, refusedAttrs},
		{"overflow is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=1e400", nil}, refusedAttrs},
		{"bool that is not a bool is refused", request{http.MethodPost, "/pay/acc-1", form, "amount=5&instant=yes", nil}, refusedAttrs},
		{"empty form value is kept as a string",
			request{http.MethodPost, "/pay/acc-1", form, "to=", nil},
			map[string]any{"to": ""}},
		{"a JSON body is read for form attributes too, as echo's binder reads it",
			request{http.MethodPost, "/pay/acc-1", jsonCT, `{"amount": 5}`, nil},
			map[string]any{"amount": 5.0}},
		{"query and header",
			request{http.MethodPost, "/pay/acc-1?ref=inv%2042", form, "amount=1", http.Header{"X-Channel": {"mobile"}}},
			map[string]any{"amount": 1.0, "ref": "inv 42", "channel": "mobile"}},
		{"a query parameter with two values is refused",
			request{http.MethodPost, "/pay/acc-1?ref=inv%2042&ref=other", form, "amount=1", nil}, refusedAttrs},
		{"nothing to read",
			request{http.MethodPost, "/pay/acc-1", form, "", nil},
			nil},

		{"JSON nested dotted paths",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT,
				`{"amount": 12.5, "payee": {"iban": "DE89370400440532013000", "address": {"country": "DE"}}, "options": {"instant": true}}`, nil},
			map[string]any{"amount": 12.5, "iban": "DE89370400440532013000", "country": "DE", "instant": true}},
		{"JSON strings convert to number and bool",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": "40", "options": {"instant": "false"}}`, nil},
			map[string]any{"amount": 40.0, "instant": false}},
		{"JSON string with spaces is not a number",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": " 40 "}`, nil}, refusedAttrs},
		{"JSON number and bool as strings",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"memo": 12.50}`, nil},
			map[string]any{"memo": "12.50"}},
		{"JSON bool as a string",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"memo": true}`, nil},
			map[string]any{"memo": "true"}},
		{"JSON null and missing paths are absent",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"memo": null, "payee": "x", "options": {}}`, nil},
			nil},
		{"JSON conversion failures are refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": "lots"}`, nil}, refusedAttrs},
		{"JSON number where a bool is expected is refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"options": {"instant": 1}}`, nil}, refusedAttrs},
		{"JSON array where a value is expected is refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": [1]}`, nil}, refusedAttrs},
		{"JSON object where a value is expected is refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"payee": {"iban": {"x": 1}}}`, nil}, refusedAttrs},
		{"JSON number too large is refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": 1e999, "memo": "m"}`, nil}, refusedAttrs},
		{"JSON that does not parse is refused",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `{"amount": 5`, nil}, refusedAttrs},
		{"JSON that is not an object",
			request{http.MethodPost, "/api/pay/acc-1", jsonCT, `[{"amount": 5}]`, nil},
			nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.expect != nil && tc.expect["refused"] == true {
				before := len(env.Emulator.Tracked())
				resp := b.Do(tc.when.method, tc.when.path, tc.when.contentType, tc.when.body, tc.when.header)
				assert.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
				assert.Len(t, env.Emulator.Tracked(), before, "nothing tracked")
				return
			}
			got, _ := trackOne(t, env, b, tc.when)
			assert.Equal(t, "transfer", got.Action)
			if tc.expect == nil {
				assert.Empty(t, got.Custom)
			} else {
				assert.Equal(t, tc.expect, got.Custom)
			}
		})
	}
}

func TestPathAttributeWithRequire(t *testing.T) {
	// Under Require the guard runs inside the mux's dispatch, where the
	// request carries its path values.
	app := muxAdapter(func(mux *http.ServeMux, g *stepup.Guard, h stepuptest.Handlers) {
		mux.Handle("POST /pay/{acct}", g.Require("transfer",
			stepup.WithAttributes(stepup.Attribute{Name: "acct", From: stepup.FromPath, Key: "acct"}))(h.Transfer))
	})
	env := newPolicyEnv(t, app, nil)
	b := env.NewBrowser()
	b.Login("alice")
	got, resp := trackOne(t, env, b, request{http.MethodPost, "/pay/acc%2F7", stepuptest.Form, "amount=5", nil})
	require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
	assert.Equal(t, map[string]any{"acct": "acc/7"}, got.Custom)
}

func TestCustomHook(t *testing.T) {
	policy := func(custom func(*http.Request, []byte) (map[string]any, error)) []stepup.Policy {
		return []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
			Attributes: []stepup.Attribute{
				{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
				{Name: "to", From: stepup.FromForm, Key: "to"},
			},
			Custom: custom}}
	}

	t.Run("merged over the attributes, sees the buffered body", func(t *testing.T) {
		var seen string
		env := newPolicyEnv(t, attributeApp, policy(func(r *http.Request, body []byte) (map[string]any, error) {
			seen = string(body)
			return map[string]any{"amount": 7, "risk": "low", "path": r.URL.Path}, nil
		}))
		b := env.NewBrowser()
		b.Login("alice")
		got, resp := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=250&to=bob", nil})
		require.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Equal(t, map[string]any{"amount": 7.0, "to": "bob", "risk": "low", "path": "/pay/acc-1"}, got.Custom)
		assert.Equal(t, "amount=250&to=bob", seen)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "amount=250&to=bob", string(runs[0].Body), "the handler still gets the whole body")
	})

	t.Run("its error refuses with 400 before anything is tracked", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, policy(func(*http.Request, []byte) (map[string]any, error) {
			return nil, errors.New("account frozen")
		}))
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=250", nil)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.NotContains(t, resp.Body, "account frozen", "the cause is for logs, not for the client")
		assert.Empty(t, env.Emulator.Tracked())
		assert.Empty(t, env.Ledger.Runs("transfer"))
		var refused []stepup.Event
		for _, ev := range env.Events.All() {
			if ev.Type == stepup.EventRefuse {
				refused = append(refused, ev)
			}
		}
		require.Len(t, refused, 1)
		assert.ErrorIs(t, refused[0].Err, stepup.ErrBadRequest)
		assert.ErrorContains(t, refused[0].Err, "account frozen")
	})

	t.Run("a hook alone, without attributes, is called", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
			Custom: func(*http.Request, []byte) (map[string]any, error) { return map[string]any{"risk": "high"}, nil }}})
		b := env.NewBrowser()
		b.Login("alice")
		got, _ := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=3", nil})
		assert.Equal(t, map[string]any{"risk": "high"}, got.Custom)
	})

	t.Run("a hook alone only sees bodies every reader parses alike", func(t *testing.T) {
		called := false
		env := newPolicyEnv(t, attributeApp, []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer",
			Custom: func(*http.Request, []byte) (map[string]any, error) { called = true; return nil, nil }}})
		b := env.NewBrowser()
		b.Login("alice")
		resp := b.Do(http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=3&%", nil)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		assert.False(t, called, "the hook never sees a malformed body")
		assert.Empty(t, env.Emulator.Tracked())
	})

	t.Run("an empty result adds nothing", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, policy(func(*http.Request, []byte) (map[string]any, error) { return nil, nil }))
		b := env.NewBrowser()
		b.Login("alice")
		got, _ := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=3", nil})
		assert.Equal(t, map[string]any{"amount": 3.0}, got.Custom)
	})
}

func TestClientIPReportedToAuthsignal(t *testing.T) {
	// The test server's peer is always 127.0.0.1.
	prefixes := func(ps ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, p := range ps {
			out = append(out, netip.MustParsePrefix(p))
		}
		return out
	}
	tests := []struct {
		name    string
		trusted []netip.Prefix
		xff     []string // X-Forwarded-For header lines
		expect  string
	}{
		{"RemoteAddr by default", nil, nil, "127.0.0.1"},
		{"X-Forwarded-For ignored without trusted proxies", nil, []string{"203.0.113.7"}, "127.0.0.1"},
		{"X-Forwarded-For ignored when the peer is not trusted", prefixes("10.0.0.0/8"), []string{"203.0.113.7"}, "127.0.0.1"},
		{"a trusted peer's hop is believed", prefixes("127.0.0.0/8"), []string{"203.0.113.7"}, "203.0.113.7"},
		{"the right-most untrusted hop, not the client-chosen left-most",
			prefixes("127.0.0.0/8"), []string{"198.51.100.1, 203.0.113.7"}, "203.0.113.7"},
		{"trusted hops are skipped",
			prefixes("127.0.0.0/8", "10.0.0.0/8"), []string{"198.51.100.1, 203.0.113.7, 10.0.0.2 , 10.1.2.3"}, "203.0.113.7"},
		{"several header lines read as one list",
			prefixes("127.0.0.0/8", "10.0.0.0/8"), []string{"198.51.100.1", "203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		{"IPv4-mapped IPv6 is unmapped",
			prefixes("127.0.0.0/8"), []string{"::ffff:203.0.113.7"}, "203.0.113.7"},
		{"IPv6 hop", prefixes("127.0.0.0/8"), []string{"2001:db8::1"}, "2001:db8::1"},
		{"garbage right-most hop: the last trusted address",
			prefixes("127.0.0.0/8"), []string{"203.0.113.7, not-an-ip"}, "127.0.0.1"},
		{"empty header from a trusted peer", prefixes("127.0.0.0/8"), []string{""}, "127.0.0.1"},
		{"every hop trusted: the left-most trusted one",
			prefixes("127.0.0.0/8", "10.0.0.0/8"), []string{"10.0.0.9, 10.0.0.2"}, "10.0.0.9"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			env := newPolicyEnv(t, attributeApp,
				[]stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer"}},
				func(c *stepup.Config) { c.TrustedProxies = tc.trusted })
			b := env.NewBrowser()
			b.Login("alice")
			var h http.Header
			if tc.xff != nil {
				h = http.Header{"X-Forwarded-For": tc.xff}
			}
			got, _ := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=1", h})
			assert.Equal(t, tc.expect, got.IPAddress)
		})
	}
}

func TestDeviceIDAndUserAgentReportedToAuthsignal(t *testing.T) {
	policies := []stepup.Policy{{Method: http.MethodPost, Route: "/pay/{acct}", Action: "transfer"}}

	t.Run("DeviceID hook", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, policies, func(c *stepup.Config) {
			c.DeviceID = func(r *http.Request) string {
				if c, err := r.Cookie("device"); err == nil {
					return c.Value
				}
				return ""
			}
		})
		b := env.NewBrowser()
		b.Login("alice")
		got, _ := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=1",
			http.Header{"Cookie": {"device=dev-42"}, "User-Agent": {"stepup-test/1.0"}}})
		assert.Equal(t, "dev-42", got.DeviceID)
		assert.Equal(t, "stepup-test/1.0", got.UserAgent)
	})
	t.Run("no hook, no device id", func(t *testing.T) {
		env := newPolicyEnv(t, attributeApp, policies)
		b := env.NewBrowser()
		b.Login("alice")
		got, _ := trackOne(t, env, b, request{http.MethodPost, "/pay/acc-1", stepuptest.Form, "amount=1",
			http.Header{"X-Device-Id": {"spoofed"}}})
		assert.Empty(t, got.DeviceID)
	})
}

// countingSessions and countingStore count how often the guard touches
// the session and the store.
type countingSessions struct {
	sessions.Store
	gets atomic.Int64
}

func (s *countingSessions) Get(r *http.Request, name string) (*sessions.Session, error) {
	s.gets.Add(1)
	return s.Store.Get(r, name)
}

type countingStore struct {
	stepup.Store
	calls atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	s.calls.Add(1)
	return s.Store.Get(ctx, id)
}

func (s *countingStore) Put(ctx context.Context, rec *stepup.Record) error {
	s.calls.Add(1)
	return s.Store.Put(ctx, rec)
}

func TestUncoveredRouteTouchesNothing(t *testing.T) {
	// DESIGN: a route no policy covers passes straight through: no user
	// lookup, no session read, no store, no provider.
	provider := &fakeProvider{state: authsignal.StateAllow, record: true}
	sess := &countingSessions{Store: sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef"))}
	store := &countingStore{Store: stepup.NewMemoryStore()}
	var userCalls atomic.Int64
	cfg := validConfig()
	cfg.Provider, cfg.Sessions, cfg.Store = provider, sess, store
	cfg.RecordKeys = [][]byte{stepuptest.RecordKey}
	cfg.UserID = func(*http.Request) (string, error) { userCalls.Add(1); return "alice", nil }
	cfg.Policies = []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
		{Method: http.MethodGet, Route: "/report", Action: "report"},
	}
	g, err := stepup.New(cfg)
	require.NoError(t, err)

	served := 0
	h := http.HandlerFunc(func(http.ResponseWriter, *http.Request) { served++ })
	mux := http.NewServeMux()
	for _, p := range []string{"POST /transfer", "GET /report", "GET /open", "GET /users/{id}", "/static/"} {
		mux.Handle(p, h)
	}
	app := g.Middleware(mux)

	for _, r := range []*http.Request{
		httptest.NewRequest(http.MethodGet, "/open", nil),
		httptest.NewRequest(http.MethodGet, "/users/42", nil),
		httptest.NewRequest(http.MethodPost, "/static/app.js", strings.NewReader("x=1")),
		httptest.NewRequest(http.MethodGet, "/transfer", nil), // the route, another method: 405 from the mux
		httptest.NewRequest(http.MethodGet, "/nowhere", nil),
	} {
		app.ServeHTTP(httptest.NewRecorder(), r)
	}
	assert.Equal(t, 3, served)
	assert.Zero(t, userCalls.Load(), "UserID")
	assert.Zero(t, sess.gets.Load(), "session reads")
	assert.Zero(t, store.calls.Load(), "store calls")
	assert.Empty(t, provider.tracked(), "tracks")

	// The same counters do move on a covered route.
	app.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/report", nil))
	assert.Equal(t, 4, served)
	assert.Equal(t, int64(1), userCalls.Load())
	assert.Positive(t, sess.gets.Load())
	assert.Len(t, provider.tracked(), 1)
}

// TestCheckPoliciesChecksAsNew: CheckPolicies, which policyfile relies on,
// accepts what New accepts and refuses what New refuses with New's error,
// naming the entry.
func TestCheckPoliciesChecksAsNew(t *testing.T) {
	tests := []struct {
		name   string
		given  []stepup.Policy
		expect string // "" when valid
	}{
		{"empty table", nil, ""},
		{"valid table", []stepup.Policy{{Method: http.MethodPost, Route: "/transfer", Action: "transfer"}, {Method: "*", Route: "/admin/", Action: "admin"}}, ""},
		{"bad action", []stepup.Policy{{Method: http.MethodGet, Route: "/a", Action: "a"}, {Method: http.MethodPost, Route: "/x", Action: "not ok"}}, "stepup: policy 1 (POST /x)"},
		{"duplicate", []stepup.Policy{{Method: http.MethodPost, Route: "/x", Action: "x"}, {Method: http.MethodPost, Route: "/x", Action: "y"}}, "duplicate"},
		{"overlap", []stepup.Policy{{Method: http.MethodPost, Route: "/x", Action: "x"}, {Method: "*", Route: "/x", Action: "y"}}, "overlap"},
		{"bad attribute", []stepup.Policy{{Method: http.MethodPost, Route: "/x", Action: "x", Attributes: []stepup.Attribute{{Name: "a", From: "cookie", Key: "a"}}}}, `unknown source "cookie"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := stepup.CheckPolicies(tc.given)
			cfg := validConfig()
			cfg.Policies = tc.given
			_, newErr := stepup.New(cfg)
			if tc.expect == "" {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.expect)
			require.Error(t, newErr)
			assert.Equal(t, newErr.Error(), err.Error())
		})
	}
}

// A table of thousands of routes answers every method of every route with
// that method's own policy, HEAD with GET's and any method with the
// route's "*" policy when it has no policy of its own, and nothing for a
// route one byte off: a protected route the table misses would be served
// without its step-up.
func TestMatchAnswersEveryRouteOfALargeTable(t *testing.T) {
	const routes = 3000
	route := func(i int) string { return fmt.Sprintf("/r/%d/{id}", i) }
	var ps []stepup.Policy
	for i := range routes {
		switch i % 3 {
		case 0:
			ps = append(ps, stepup.Policy{Method: "*", Route: route(i), Action: fmt.Sprintf("any-%d", i)})
		case 1:
			ps = append(ps, stepup.Policy{Method: http.MethodPost, Route: route(i), Action: fmt.Sprintf("post-%d", i)},
				stepup.Policy{Method: http.MethodGet, Route: route(i), Action: fmt.Sprintf("get-%d", i)})
		default:
			ps = append(ps, stepup.Policy{Method: http.MethodDelete, Route: route(i), Action: fmt.Sprintf("delete-%d", i)},
				stepup.Policy{Method: http.MethodHead, Route: route(i), Action: fmt.Sprintf("head-%d", i)},
				stepup.Policy{Method: http.MethodGet, Route: route(i), Action: fmt.Sprintf("get-%d", i)})
		}
	}
	cfg := validConfig()
	cfg.Policies = ps
	g, err := stepup.New(cfg)
	require.NoError(t, err)
	methods := []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodDelete, "FOO"}
	for i := range routes {
		r := route(i)
		for _, m := range methods {
			want := ""
			switch {
			case i%3 == 0:
				want = "any"
			case m == http.MethodGet, m == http.MethodHead && i%3 == 1:
				want = "get"
			case m == http.MethodHead, m == http.MethodPost && i%3 == 1, m == http.MethodDelete && i%3 == 2:
				want = strings.ToLower(m)
			}
			rule, ok := g.Match(m, r)
			if want == "" {
				require.False(t, ok, "%s %s", m, r)
				continue
			}
			require.True(t, ok, "%s %s", m, r)
			require.Equal(t, fmt.Sprintf("%s-%d", want, i), rule.Policy().Action, "%s %s", m, r)
		}
		for _, off := range []string{r + "x", r[:len(r)-1], strings.Replace(r, "/r/", "/s/", 1), strings.ToUpper(r)} {
			_, ok := g.Match(http.MethodGet, off)
			require.False(t, ok, "GET %s", off)
		}
	}
}
