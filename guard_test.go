package stepup_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// twoGoodPolicies precede the broken entry in table tests, so that the
// error has to name the right index.
var twoGoodPolicies = []stepup.Policy{
	{Method: http.MethodPost, Route: "/transfer", Action: "transfer"},
	{Method: http.MethodGet, Route: "/report", Action: "report"},
}

func withPolicy(p ...stepup.Policy) func(*stepup.Config) {
	return func(c *stepup.Config) {
		c.Policies = append(append([]stepup.Policy(nil), twoGoodPolicies...), p...)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	attr := func(a ...stepup.Attribute) func(*stepup.Config) {
		return withPolicy(stepup.Policy{Method: http.MethodPost, Route: "/pay", Action: "pay", Attributes: a})
	}
	tests := []struct {
		name   string
		given  func(*stepup.Config)
		expect []string // each must appear in the error
	}{
		// Required fields.
		{"missing Provider", func(c *stepup.Config) { c.Provider = nil }, []string{"Config.Provider", "required"}},
		{"missing Sessions", func(c *stepup.Config) { c.Sessions = nil }, []string{"Config.Sessions", "required"}},
		{"missing UserID", func(c *stepup.Config) { c.UserID = nil }, []string{"Config.UserID", "required"}},
		{"SessionName not a cookie name", func(c *stepup.Config) { c.SessionName = "step up" }, []string{"Config.SessionName", `"step up"`}},
		{"SessionName with a ';'", func(c *stepup.Config) { c.SessionName = "a;b" }, []string{"Config.SessionName"}},

		// CallbackURL must be an absolute http(s) URL of this application.
		{"empty CallbackURL", func(c *stepup.Config) { c.CallbackURL = "" }, []string{"Config.CallbackURL"}},
		{"relative CallbackURL", func(c *stepup.Config) { c.CallbackURL = "/stepup/callback" }, []string{"Config.CallbackURL", `"/stepup/callback"`}},
		{"scheme-relative CallbackURL", func(c *stepup.Config) { c.CallbackURL = "//app.example/cb" }, []string{"Config.CallbackURL"}},
		{"ftp CallbackURL", func(c *stepup.Config) { c.CallbackURL = "ftp://app.example/cb" }, []string{"Config.CallbackURL", "ftp://"}},
		{"javascript CallbackURL", func(c *stepup.Config) { c.CallbackURL = "javascript:alert(1)" }, []string{"Config.CallbackURL"}},
		{"CallbackURL with userinfo", func(c *stepup.Config) { c.CallbackURL = "https://u:p@app.example/cb" }, []string{"Config.CallbackURL"}},
		{"CallbackURL with fragment", func(c *stepup.Config) { c.CallbackURL = "https://app.example/cb#x" }, []string{"Config.CallbackURL"}},
		{"CallbackURL without host", func(c *stepup.Config) { c.CallbackURL = "https:///cb" }, []string{"Config.CallbackURL"}},
		{"CallbackURL that does not parse", func(c *stepup.Config) { c.CallbackURL = "https://app.example/cb\x7f" }, []string{"Config.CallbackURL"}},

		// Methods: upper-case HTTP methods or "*".
		{"unknown method", withPolicy(stepup.Policy{Method: "FETCH", Route: "/x", Action: "x"}), []string{"policy 2 (FETCH /x)", "unknown method"}},
		{"lower-case method", withPolicy(stepup.Policy{Method: "post", Route: "/x", Action: "x"}), []string{"policy 2 (post /x)", "unknown method"}},
		{"empty method", withPolicy(stepup.Policy{Route: "/x", Action: "x"}), []string{"policy 2", "/x", "unknown method"}},
		{"method with a space", withPolicy(stepup.Policy{Method: "POST ", Route: "/x", Action: "x"}), []string{"policy 2", "unknown method"}},

		// Routes: the router's pattern, one leading "/", nothing a path
		// cleaner would change.
		{"empty route", withPolicy(stepup.Policy{Method: "POST", Action: "x"}), []string{"policy 2 (POST )", "must start with /"}},
		{"route without leading slash", withPolicy(stepup.Policy{Method: "POST", Route: "transfer", Action: "x"}), []string{"policy 2 (POST transfer)", "must start with /"}},
		{"route with a host", withPolicy(stepup.Policy{Method: "POST", Route: "app.example/x", Action: "x"}), []string{"policy 2", "must start with /"}},
		{"route //", withPolicy(stepup.Policy{Method: "POST", Route: "//", Action: "x"}), []string{"policy 2 (POST //)", "empty segment"}},
		{"route //transfer", withPolicy(stepup.Policy{Method: "POST", Route: "//transfer", Action: "x"}), []string{"policy 2 (POST //transfer)", "empty segment"}},
		{"route with an empty segment", withPolicy(stepup.Policy{Method: "POST", Route: "/a//b", Action: "x"}), []string{"policy 2 (POST /a//b)", "empty segment"}},
		{"route /.", withPolicy(stepup.Policy{Method: "POST", Route: "/.", Action: "x"}), []string{"policy 2", "dot segment"}},
		{"route with ./", withPolicy(stepup.Policy{Method: "POST", Route: "/./transfer", Action: "x"}), []string{"policy 2 (POST /./transfer)", "dot segment"}},
		{"route with ../", withPolicy(stepup.Policy{Method: "POST", Route: "/x/../transfer", Action: "x"}), []string{"policy 2 (POST /x/../transfer)", "dot segment"}},
		{"route ending in ..", withPolicy(stepup.Policy{Method: "POST", Route: "/x/..", Action: "x"}), []string{"policy 2", "dot segment"}},
		{"route with ?", withPolicy(stepup.Policy{Method: "POST", Route: "/x?a=1", Action: "x"}), []string{"policy 2", "forbidden character", `'?'`}},
		{"route with #", withPolicy(stepup.Policy{Method: "POST", Route: "/x#a", Action: "x"}), []string{"policy 2", "forbidden character", `'#'`}},
		{"route with a space", withPolicy(stepup.Policy{Method: "POST", Route: "/a b", Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route with a tab", withPolicy(stepup.Policy{Method: "POST", Route: "/a\tb", Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route with a newline", withPolicy(stepup.Policy{Method: "POST", Route: "/a\n", Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route with NUL", withPolicy(stepup.Policy{Method: "POST", Route: "/a\x00", Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route with DEL", withPolicy(stepup.Policy{Method: "POST", Route: "/a\x7f", Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route with a backslash", withPolicy(stepup.Policy{Method: "POST", Route: `/a\b`, Action: "x"}), []string{"policy 2", "forbidden character"}},
		{"route starting /\\", withPolicy(stepup.Policy{Method: "POST", Route: `/\evil.example`, Action: "x"}), []string{"policy 2", "forbidden character"}},

		// Action codes: ^[a-zA-Z0-9_-]{1,64}$.
		{"empty action", withPolicy(stepup.Policy{Method: "POST", Route: "/x"}), []string{"policy 2 (POST /x)", "action code"}},
		{"action with a space", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "my action"}), []string{"policy 2 (POST /x)", `"my action"`}},
		{"action with a dot", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "a.b"}), []string{"policy 2", `"a.b"`}},
		{"action with a slash", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "a/b"}), []string{"policy 2", `"a/b"`}},
		{"action of 65 characters", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: strings.Repeat("a", 65)}), []string{"policy 2", "action code"}},
		{"unicode action", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "transfér"}), []string{"policy 2", "action code"}},
		{"unicode digit in action", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "pay٣"}), []string{"policy 2", "action code"}},
		{"action ending in a newline", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: "pay\n"}), []string{"policy 2", "action code"}},

		// The table as a whole.
		{"duplicate policy", withPolicy(stepup.Policy{Method: "POST", Route: "/transfer", Action: "again"}), []string{"policy 2 (POST /transfer)", "duplicate"}},
		{"* and POST on one route", withPolicy(stepup.Policy{Method: "*", Route: "/transfer", Action: "any"}), []string{"POST /transfer", "* /transfer", "overlap"}},
		{"negative Remember", withPolicy(stepup.Policy{Method: "GET", Route: "/admin", Action: "admin", Remember: -time.Second}), []string{"policy 2 (GET /admin)", "negative remember"}},

		// Attributes.
		{"attribute with unknown source", attr(stepup.Attribute{Name: "amount", From: "cookie", Key: "amount"}), []string{"policy 2 (POST /pay)", "attribute 0", `unknown source "cookie"`}},
		{"attribute with empty source", attr(stepup.Attribute{Name: "amount", Key: "amount"}), []string{"policy 2 (POST /pay)", "attribute 0", "unknown source"}},
		{"attribute with unknown type", attr(stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "int"}), []string{"policy 2 (POST /pay)", "attribute 0", `unknown type "int"`}},
		{"attribute with empty key", attr(stepup.Attribute{Name: "a", From: stepup.FromForm, Key: "a"}, stepup.Attribute{Name: "amount", From: stepup.FromForm}), []string{"policy 2 (POST /pay)", "attribute 1", `"amount"`, "empty key"}},
		{"attribute with empty name", attr(stepup.Attribute{From: stepup.FromForm, Key: "amount"}), []string{"policy 2 (POST /pay)", "attribute 0", "name"}},
		{"attribute name with a dot", attr(stepup.Attribute{Name: "payee.iban", From: stepup.FromJSON, Key: "payee.iban"}), []string{"policy 2 (POST /pay)", `"payee.iban"`}},
		{"duplicate attribute names", attr(
			stepup.Attribute{Name: "amount", From: stepup.FromForm, Key: "amount"},
			stepup.Attribute{Name: "amount", From: stepup.FromQuery, Key: "amount"},
		), []string{"policy 2 (POST /pay)", `"amount"`, "twice"}},

		// Limits.
		{"MaxPending 21", func(c *stepup.Config) { c.MaxPending = 21 }, []string{"Config.MaxPending"}},
		{"MaxPending negative", func(c *stepup.Config) { c.MaxPending = -1 }, []string{"Config.MaxPending"}},
		{"MaxChallengesPerUser negative", func(c *stepup.Config) { c.MaxChallengesPerUser = -1 }, []string{"Config.MaxChallengesPerUser"}},
		{"MaxChallengesPerSession negative", func(c *stepup.Config) { c.MaxChallengesPerSession = -1 }, []string{"Config.MaxChallengesPerSession"}},
		{"MaxChallengesPerSession over the user's", func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 4, 5 },
			[]string{"Config.MaxChallengesPerSession", "MaxChallengesPerUser"}},
		{"MaxHeaderValues negative", func(c *stepup.Config) { c.MaxHeaderValues = -1 }, []string{"Config.MaxHeaderValues"}},
		{"MaxHeaderBytes negative", func(c *stepup.Config) { c.MaxHeaderBytes = -1 }, []string{"MaxHeaderBytes"}},
		{"provider without a secret key", func(c *stepup.Config) { c.Provider = authsignal.NewClient("") }, []string{"Config.Provider", "missing secret key"}},
		{"provider with a bad base URL", func(c *stepup.Config) { c.Provider = authsignal.NewClient("sk", authsignal.WithBaseURL("ftp://x")) }, []string{"Config.Provider", "base URL"}},
		{"PassTTL 2m", func(c *stepup.Config) { c.PassTTL = 2 * time.Minute }, []string{"Config.PassTTL"}},
		{"PassTTL negative", func(c *stepup.Config) { c.PassTTL = -time.Second }, []string{"Config.PassTTL"}},
		{"ReviewStatus 200", func(c *stepup.Config) { c.ReviewStatus = http.StatusOK }, []string{"Config.ReviewStatus"}},
		{"ReviewStatus 399", func(c *stepup.Config) { c.ReviewStatus = 399 }, []string{"Config.ReviewStatus"}},
		{"ReviewStatus 600", func(c *stepup.Config) { c.ReviewStatus = 600 }, []string{"Config.ReviewStatus"}},
		{"MaxBodyBytes negative", func(c *stepup.Config) { c.MaxBodyBytes = -1 }, []string{"Config.MaxBodyBytes"}},
		{"ParkTTL negative", func(c *stepup.Config) { c.ParkTTL = -time.Minute }, []string{"Config.ParkTTL"}},
		{"ProviderTimeout negative", func(c *stepup.Config) { c.ProviderTimeout = -time.Second }, []string{"Config.ProviderTimeout"}},
		{"RetryAfter negative", func(c *stepup.Config) { c.RetryAfter = -time.Second }, []string{"RetryAfter"}},

		// ChallengeOrigins: scheme://host[:port] only.
		{"origin without scheme", func(c *stepup.Config) { c.ChallengeOrigins = []string{"authsignal.com"} }, []string{"ChallengeOrigins", `"authsignal.com"`}},
		{"ftp origin", func(c *stepup.Config) { c.ChallengeOrigins = []string{"ftp://authsignal.com"} }, []string{"ChallengeOrigins", `"ftp://authsignal.com"`}},
		{"origin with a path", func(c *stepup.Config) {
			c.ChallengeOrigins = []string{"https://authsignal.com", "https://example.com/challenge"}
		}, []string{"ChallengeOrigins", `"https://example.com/challenge"`}},
		{"origin with userinfo", func(c *stepup.Config) { c.ChallengeOrigins = []string{"https://u:p@authsignal.com"} }, []string{"ChallengeOrigins"}},
		{"origin without host", func(c *stepup.Config) { c.ChallengeOrigins = []string{"https://"} }, []string{"ChallengeOrigins", `"https://"`}},
		{"empty origin", func(c *stepup.Config) { c.ChallengeOrigins = []string{""} }, []string{"ChallengeOrigins", `""`}},
		{"scheme-relative origin", func(c *stepup.Config) { c.ChallengeOrigins = []string{"//authsignal.com"} }, []string{"ChallengeOrigins"}},

		// ReplayHeaders can never add what must not be replayed.
		{"replay Authorization", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-Tenant", "Authorization"} }, []string{"ReplayHeaders", "Authorization"}},
		{"replay Cookie (any case)", func(c *stepup.Config) { c.ReplayHeaders = []string{"cookie"} }, []string{"ReplayHeaders", "Cookie"}},
		{"replay X-Forwarded-For", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-Forwarded-For"} }, []string{"ReplayHeaders", "X-Forwarded-For"}},
		{"replay X-Forwarded-Host", func(c *stepup.Config) { c.ReplayHeaders = []string{"x-forwarded-host"} }, []string{"ReplayHeaders", "X-Forwarded-Host"}},
		{"replay Forwarded", func(c *stepup.Config) { c.ReplayHeaders = []string{"Forwarded"} }, []string{"ReplayHeaders", "Forwarded"}},
		{"replay X-Real-IP", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-Real-IP"} }, []string{"ReplayHeaders"}},
		{"replay Host", func(c *stepup.Config) { c.ReplayHeaders = []string{"Host"} }, []string{"ReplayHeaders", "Host"}},
		{"replay Proxy-Authorization", func(c *stepup.Config) { c.ReplayHeaders = []string{"Proxy-Authorization"} }, []string{"ReplayHeaders"}},
		{"replay Content-Length", func(c *stepup.Config) { c.ReplayHeaders = []string{"Content-Length"} }, []string{"ReplayHeaders"}},
		{"replay Transfer-Encoding", func(c *stepup.Config) { c.ReplayHeaders = []string{"Transfer-Encoding"} }, []string{"ReplayHeaders"}},
		{"replay Content-Encoding", func(c *stepup.Config) { c.ReplayHeaders = []string{"Content-Encoding"} }, []string{"ReplayHeaders"}},
		{"replay X-HTTP-Method-Override", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-HTTP-Method-Override"} }, []string{"ReplayHeaders"}},
		{"replay X-Original-URL", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-Original-URL"} }, []string{"ReplayHeaders"}},
		{"replay the step-up token", func(c *stepup.Config) { c.ReplayHeaders = []string{stepup.TokenHeader} }, []string{"ReplayHeaders"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.given(&cfg)
			g, err := stepup.New(cfg)
			require.Error(t, err)
			assert.Nil(t, g)
			assert.True(t, strings.HasPrefix(err.Error(), "stepup: "), "error %q is prefixed", err)
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestNewAcceptsConfigAtTheEdges(t *testing.T) {
	tests := []struct {
		name  string
		given func(*stepup.Config)
	}{
		{"the minimum", func(*stepup.Config) {}},
		{"http CallbackURL with port and query", func(c *stepup.Config) { c.CallbackURL = "http://localhost:8080/cb?app=1" }},
		{"MaxPending 20", func(c *stepup.Config) { c.MaxPending = 20 }},
		{"MaxPending 1", func(c *stepup.Config) { c.MaxPending = 1 }},
		{"MaxChallengesPerUser 1", func(c *stepup.Config) { c.MaxChallengesPerUser = 1 }},
		{"MaxChallengesPerSession equal to the user's", func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 3, 3 }},
		{"a working authsignal client", func(c *stepup.Config) {
			c.Provider = authsignal.NewClient("sk", authsignal.WithRegion(authsignal.RegionEU))
		}},
		{"PassTTL one minute", func(c *stepup.Config) { c.PassTTL = time.Minute }},
		{"ReviewStatus 400", func(c *stepup.Config) { c.ReviewStatus = 400 }},
		{"ReviewStatus 599", func(c *stepup.Config) { c.ReviewStatus = 599 }},
		{"action of 64 characters", withPolicy(stepup.Policy{Method: "POST", Route: "/x", Action: strings.Repeat("aZ9_-", 12) + "abcd"})},
		{"every known method", func(c *stepup.Config) {
			for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"} {
				c.Policies = append(c.Policies, stepup.Policy{Method: m, Route: "/x", Action: "x"})
			}
		}},
		{"router wildcards kept as text", withPolicy(
			stepup.Policy{Method: "*", Route: "/admin/", Action: "admin"},
			stepup.Policy{Method: "DELETE", Route: "/items/{id}", Action: "deleteItem"},
			stepup.Policy{Method: "DELETE", Route: "/echo/items/:id", Action: "deleteItem"},
			stepup.Policy{Method: "GET", Route: "/files/{path...}", Action: "files"},
			stepup.Policy{Method: "GET", Route: "/{$}", Action: "home"},
			stepup.Policy{Method: "*", Route: "/", Action: "everything"},
		)},
		{"one route, several methods", withPolicy(stepup.Policy{Method: "PUT", Route: "/transfer", Action: "transfer"})},
		{"Remember and every attribute source", withPolicy(stepup.Policy{
			Method: "POST", Route: "/pay/{acct}", Action: "pay", Remember: 5 * time.Minute, FailOpen: true,
			Attributes: []stepup.Attribute{
				{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
				{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
				{Name: "acct", From: stepup.FromPath, Key: "acct", Type: "string"},
				{Name: "ref", From: stepup.FromQuery, Key: "ref"},
				{Name: "urgent", From: stepup.FromHeader, Key: "X-Urgent", Type: "bool"},
			},
		})},
		{"wildcard and explicit origins", func(c *stepup.Config) {
			c.ChallengeOrigins = []string{"https://*.authsignal.com", "http://localhost:8081", "https://auth.example/"}
		}},
		{"extra replay headers", func(c *stepup.Config) { c.ReplayHeaders = []string{"X-Tenant", "x-request-id"} }},
		{"trusted proxies", func(c *stepup.Config) {
			c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.given(&cfg)
			g, err := stepup.New(cfg)
			require.NoError(t, err)
			require.NotNil(t, g)
			for _, p := range cfg.Policies {
				method := p.Method
				if method == "*" {
					method = http.MethodPatch
				}
				rule, ok := g.Match(method, p.Route)
				require.True(t, ok, "%s %s", p.Method, p.Route)
				assert.Equal(t, p.Action, rule.Policy().Action)
			}
		})
	}
}

func TestNewErrorsAreNotGuardErrors(t *testing.T) {
	// A configuration mistake is not a refusal: nothing in the error says
	// it is one of the request-time sentinels.
	cfg := validConfig()
	cfg.Policies = []stepup.Policy{{Method: "post", Route: "/x", Action: "x"}}
	_, err := stepup.New(cfg)
	require.Error(t, err)
	var e *stepup.Error
	assert.False(t, errors.As(err, &e))
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
