package stepup_test

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

// FuzzParsePolicies: a policy file never panics the parser, and whatever
// it accepts, New accepts too and protects exactly as written.
func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte(policyYAML))
	f.Add([]byte(policyJSON))
	f.Add([]byte("policies:\n  - {method: GET, route: /a, action: a, remember: 1ns}\n"))
	f.Add([]byte("policies:\n  - {method: '*', route: /, action: a}\n  - {method: GET, route: /{$}, action: b}\n"))
	f.Add([]byte("policies:\n  - &p {method: GET, route: /a, action: a}\n  - *p\n"))
	f.Add([]byte("policies:\n  - method: POST\n    route: /x/../y\n    action: x\n"))
	f.Add([]byte(`{"policies": [{"method": "PUT", "route": "/u/{id}", "action": "u", "attributes": [{"name": "n", "from": "path", "key": "id", "type": "number"}]}]}`))
	f.Add([]byte("policies: [{method: GET, route: /a, action: a, remember: -1h}]"))
	f.Add([]byte("policies:\n  - {method: GET, route: \"/a\\tb\", action: a}\n"))
	f.Add([]byte("\xef\xbb\xbfpolicies: []"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := stepup.ParsePolicies(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "stepup: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("no error and no policies")
		}
		cfg := validConfig()
		cfg.Policies = ps
		g, err := stepup.New(cfg)
		if err != nil {
			t.Fatalf("ParsePolicies accepted what New refuses: %v", err)
		}
		for _, p := range ps {
			method := p.Method
			if method == "*" {
				method = http.MethodPatch
			}
			rule, ok := g.Match(method, p.Route)
			if !ok || rule.Policy().Action != p.Action || rule.Policy().Remember != p.Remember || p.Remember < 0 {
				t.Fatalf("policy %+v not protected as written", p)
			}
		}
	})
}

// FuzzCallbackParams sends arbitrary query strings to the callback of a
// running application whose session holds real parks. "{park}" in the
// input is replaced by the id of a fresh pending park, "{apipark}" by
// an API challenge's id, "{token}" by a valid token of a completed
// challenge whose park id the input never learns, and "{pagetoken}" by
// the challenge page's own token. Whatever the input: never a 5xx, never
// a Location off this origin, never a handler execution, and the
// hand-off page never lets the token out of its script string.
func FuzzCallbackParams(f *testing.F) {
	keys := &lastKey{}
	env := stepuptest.NewEnv(f, guardedApp, stepuptest.Options{Provider: func(p stepup.Provider) stepup.Provider {
		keys.Provider = p
		return keys
	}, Config: func(c *stepup.Config) {
		c.MaxChallengesPerUser, c.MaxChallengesPerSession = 1<<20, 1<<20 // every input may open one; the clock stands still
	}})
	b := env.NewBrowser()
	b.Login("alice")

	// A challenge completed and never redeemed: its token is valid for
	// alice and "transfer", and bound to a park the fuzzer cannot name.
	token := stepuptest.Param(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=9000&to=eve", nil))), "token")
	// An API challenge, pending: its id leads to the hand-off page.
	require.Equal(f, http.StatusUnauthorized, b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, nil).StatusCode)
	apiPark := keys.last()

	for _, seed := range []string{
		"", "park=", "token=", "park={park}", "park={park}&token=", "park={park}&token={token}",
		"park={park}&token={pagetoken}", "park={park}&park={apipark}&token={token}", "token={token}&park={park}",
		"park={apipark}&token={token}", "park={apipark}&token=%3C%2Fscript%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E",
		"park={apipark}&token=\u2028\u2029%22%27%5C", "park={apipark}", "park=AAAAAAAAAAAAAAAAAAAAAA&token={token}",
		"park=%zz&token={token}", "park={park};token={token}", "park={park}&token={token}#x", "park={park}%00&token={token}",
		"park=" + strings.Repeat("A", 300) + "&token=" + strings.Repeat("t", 9000),
	} {
		f.Add(seed)
	}

	f.Fuzz(func(t *testing.T, query string) {
		b.T = t // the browser reports to the running input, not to f
		for i := 0; i < len(query); i++ {
			if query[i] <= ' ' || query[i] == 0x7f {
				return // no server receives these in a request target
			}
		}
		if strings.Contains(query, "{park}") || strings.Contains(query, "{pagetoken}") {
			resp := b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
			query = strings.ReplaceAll(query, "{park}", keys.last())
			query = strings.ReplaceAll(query, "{pagetoken}", stepuptest.Param(resp.Header.Get("Location"), "token"))
		}
		query = strings.NewReplacer("{apipark}", apiPark, "{token}", token).Replace(query)

		req, err := http.NewRequest(http.MethodGet, env.Server.URL+stepuptest.CallbackPath, nil)
		require.NoError(t, err)
		req.URL.RawQuery = query
		req.Header.Set("Accept", "text/html")
		resp := b.Send(req)

		if resp.StatusCode >= 500 {
			t.Fatalf("status %d for %q: %s", resp.StatusCode, query, resp.Body)
		}
		if loc := resp.Header.Get("Location"); loc != "" && !localPath(loc) {
			t.Fatalf("Location %q for %q", loc, query)
		}
		if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Referrer-Policy") != "no-referrer" {
			t.Fatalf("callback answer without no-store/no-referrer: %v", resp.Header)
		}
		if runs := env.Ledger.Runs(""); len(runs) > 0 {
			t.Fatalf("%q ran %s", query, runs[0].Name)
		}
		if strings.Contains(resp.Body, "stepup:token") {
			lower := strings.ToLower(resp.Body)
			if strings.Count(lower, "<script") != 1 || strings.Count(lower, "</script") != 1 {
				t.Fatalf("hand-off page lets the token out of its script: %s", resp.Body)
			}
		}
	})
}

// lastKey passes calls on to the provider and remembers the idempotency
// key of the last track, which is the id of the park it was made for.
type lastKey struct {
	stepup.Provider
	mu  sync.Mutex
	key string
}

func (p *lastKey) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	p.mu.Lock()
	p.key = req.IdempotencyKey
	p.mu.Unlock()
	return p.Provider.Track(ctx, user, action, req)
}

func (p *lastKey) last() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.key
}

// localPath accepts a Location that stays on this origin.
func localPath(loc string) bool {
	if loc == "" || loc[0] != '/' || strings.HasPrefix(loc, "//") || strings.HasPrefix(loc, "/\\") {
		return false
	}
	for i := 0; i < len(loc); i++ {
		if loc[i] <= ' ' || loc[i] >= 0x7f || loc[i] == '\\' {
			return false
		}
	}
	return true
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
