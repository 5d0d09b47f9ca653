package stepup_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// fakeProvider is an in-process test double of Authsignal, shared by the
// tests and benchmarks of this package. Track answers state (with a
// challenge URL on authsignal.com, one of the default ChallengeOrigins,
// when the state is CHALLENGE_REQUIRED) and records what it was sent.
// Validate accepts tokens of the form "ok.<idempotencyKey>" for whatever
// user and action it is asked about: it is a provider that believes
// everything, so only tests that want a successful callback use it.
type fakeProvider struct {
	state authsignal.State
	url   string // challenge URL; default https://eu.authsignal.com/challenge?t=1

	mu     sync.Mutex
	tracks []authsignal.TrackRequest
	record bool // keep a copy of each track request (off in benchmarks)
}

func (p *fakeProvider) Track(_ context.Context, _, _ string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	if p.record {
		p.mu.Lock()
		p.tracks = append(p.tracks, req)
		p.mu.Unlock()
	}
	resp := &authsignal.TrackResponse{State: p.state, IdempotencyKey: req.IdempotencyKey}
	if p.state == authsignal.StateChallengeRequired {
		resp.URL = p.url
		if resp.URL == "" {
			resp.URL = "https://eu.authsignal.com/challenge?t=1"
		}
	}
	return resp, nil
}

func (p *fakeProvider) Validate(_ context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	key, ok := strings.CutPrefix(req.Token, "ok.")
	if !ok {
		return &authsignal.ValidateResponse{State: authsignal.StateChallengeFailed}, nil
	}
	return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
		UserID: req.UserID, Action: req.Action, IdempotencyKey: key}, nil
}

// tracked returns copies of the track requests received so far.
func (p *fakeProvider) tracked() []authsignal.TrackRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]authsignal.TrackRequest(nil), p.tracks...)
}

// validConfig is the smallest Config New accepts; each test breaks one
// thing in a copy of it.
func validConfig() stepup.Config {
	return stepup.Config{
		Provider:    &fakeProvider{state: authsignal.StateAllow},
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	}
}

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
		{"negative RememberFor", "admin", []stepup.RequireOption{stepup.RememberFor(-time.Minute)}, "negative remember"},
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
			g.Require(strings.Repeat("a", 64), stepup.RememberFor(time.Minute), stepup.FailOpen(),
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
