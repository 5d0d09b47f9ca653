package stepup_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/stepuptest"
)

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
