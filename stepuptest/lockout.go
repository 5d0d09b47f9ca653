package stepuptest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runLockout checks that shared capacity cannot be exhausted: parked
// headers are capped, a stolen session cannot use up its user's challenges,
// the caps hold under concurrency, a few accounts leave room for everybody
// else, and a full store turns away new challenges but never a user who
// already passed one (SECURITY.md, threat 17).
func runLockout(t *testing.T, a Adapter) {
	t.Run("parked headers: at the caps parks, one value or byte more is 431 before tracking", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxHeaderValues, c.MaxHeaderBytes = 6, 600 }})
		b := env.NewBrowser()
		b.Login("alice")
		// Do sends Accept (37 bytes with its name) and Content-Type (45): two values, 82 bytes.
		atBytes := http.Header{"Referer": {strings.Repeat("r", 600-82-len("Referer"))}}
		atValues := http.Header{"Accept-Language": {"a", "b", "c", "d"}}
		for _, h := range []http.Header{atBytes, atValues} {
			cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", h)))
			require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
		}
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 2)
		assert.Equal(t, atBytes["Referer"], runs[0].Header["Referer"])
		assert.Equal(t, atValues["Accept-Language"], runs[1].Header["Accept-Language"], "every value of a repeated header is replayed")

		tracked := len(env.Emulator.Tracked())
		for name, h := range map[string]http.Header{
			"one byte more":               {"Referer": {atBytes["Referer"][0] + "r"}},
			"one value more":              {"Accept-Language": {"a", "b", "c", "d", "e"}},
			"one empty value more":        {"Accept-Language": {"", "", "", "", ""}},
			"50,000 empty values":         {"Referer": make([]string, 50_000)},
			"a header of 1,000,000 bytes": {"Referer": {strings.Repeat("r", 1_000_000)}},
		} {
			resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", h)
			assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode, name)
			assert.Empty(t, resp.Header.Get("Location"), name)
		}
		assert.Equal(t, tracked, len(env.Emulator.Tracked()), "nothing tracked, so nothing parked")
		assert.Len(t, env.Ledger.Runs("transfer"), 2)
		b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", http.Header{"Authorization": {strings.Repeat("a", 4000)}}))
	})

	t.Run("a stolen session cannot lock the user's other session out", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts Options
			drop bool // the attacker drops the guard's cookie at every request
		}{
			{"guard's own session id, attacker keeps its cookies", Options{}, false},
			{"Config.SessionID, attacker drops the guard's cookie", Options{SessionID: true}, true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := NewEnv(t, a, tc.opts)
				user, thief := env.NewBrowser(), env.NewBrowser()
				user.Login("alice")
				thief.Login("alice")
				if tc.drop {
					thief.dropCookie("stepup") // Config.SessionName's default
				}
				opened, status := openUntilRefused(t, thief, "amount=5000", nil, false, 100)
				assert.Equal(t, http.StatusTooManyRequests, status)
				assert.Equal(t, 5, opened, "Config.MaxChallengesPerSession's default, the first challenge included")

				cb := user.Complete(user.Challenge(user.Do(http.MethodPost, "/transfer", Form, "amount=7000", nil)))
				require.Equal(t, http.StatusOK, user.Get(cb).StatusCode)
				runs := env.Ledger.Runs("transfer")
				require.Len(t, runs, 1)
				assert.Equal(t, "amount=7000", string(runs[0].Body))
			})
		}
	})

	t.Run("concurrent requests never get past a cap", func(t *testing.T) {
		for _, tc := range []struct {
			name     string
			opts     Options
			browsers int // distinct login sessions the requests come from
		}{
			// Long provider deadlines: a loaded machine's slow track (a
			// correct 503) is not what these counts are about.
			{"per user", Options{Config: func(c *stepup.Config) { c.MaxChallengesPerUser, c.ProviderTimeout = 3, 15*time.Second }}, 12},
			{"per session", Options{SessionID: true, Config: func(c *stepup.Config) { c.MaxChallengesPerSession, c.ProviderTimeout = 3, 15*time.Second }}, 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := NewEnv(t, a, tc.opts)
				var bs []*Browser
				for range tc.browsers {
					b := env.NewBrowser()
					b.Login("alice")
					bs = append(bs, b)
				}
				const requests = 12
				statuses := make([]int, requests)
				var wg sync.WaitGroup
				for i := range requests {
					wg.Add(1)
					go func() {
						defer wg.Done()
						b := bs[i%len(bs)]
						req, err := http.NewRequest(http.MethodPost, env.Server.URL+"/transfer", strings.NewReader(fmt.Sprintf("amount=%d", 5000+i)))
						if err != nil {
							return
						}
						req.Header.Set("Content-Type", Form)
						req.Header.Set("Accept", "text/html")
						resp, err := b.C.Do(req)
						if err != nil {
							return
						}
						resp.Body.Close()
						statuses[i] = resp.StatusCode
					}()
				}
				wg.Wait()
				count := map[int]int{}
				for _, s := range statuses {
					count[s]++
				}
				assert.Equal(t, map[int]int{http.StatusSeeOther: 3, http.StatusTooManyRequests: requests - 3}, count)
				assert.Equal(t, 3, len(env.Emulator.Tracked()), "a request beyond the cap is never tracked")
			})
		}
	})

	t.Run("a few accounts cannot deny others, with the default limits", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		// The attackers hold as much as they can per challenge: the
		// biggest body whose echo the guard keeps as the replay's outcome
		// (both within Config.MaxBodyBytes, 64 KiB), and the biggest headers
		// it parks: one the server takes, else headers at MaxHeaderBytes
		// (8 KiB) with what Do sends (82 bytes). A passed challenge gives
		// its slot back: what the caps bound is the challenges left open.
		// Each account first establishes browsers (one passed challenge
		// each, its outcome and spent token held too) and fills them, then
		// fills fresh ones: no more than a session keeps (Config.MaxPending,
		// 5) each, until a cap stops it.
		body := "amount=5000&pad="
		body += strings.Repeat("x", 64<<10-len("done: transfer POST /transfer ")-len(body))
		sizes := []int{1000 << 10, 8<<10 - 82 - len("Referer")}
		header := func(i int) http.Header {
			return http.Header{"Referer": {strings.Repeat("r", sizes[min(i, len(sizes)-1)])}}
		}
		passed := 0
	accounts:
		for _, account := range []string{"mallory", "trudy", "oscar"} {
			for _, establish := range []bool{true, false} {
				opened := 0
				for range 10 {
					b := env.NewBrowser()
					b.Login(account)
					if establish {
						n, status := openUntilRefused(t, b, body, header, true, 1)
						require.Equal(t, 1, n, "a passed challenge does not count: %d", status)
						passed++
					}
					n, status := openUntilRefused(t, b, body, header, false, 5)
					opened += n
					if status == http.StatusServiceUnavailable {
						break accounts // the store is full: alice will not get in
					}
					if n == 0 {
						break
					}
				}
				assert.Equal(t, 20, opened, "%s, established %t: MaxChallengesPerUser's default", account, establish)
			}
		}
		assert.Equal(t, passed, len(env.Ledger.Runs("transfer")), "every passed challenge ran")

		alice := env.NewBrowser()
		alice.Login("alice")
		cb := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, body, nil)))
		require.Equal(t, http.StatusOK, alice.Get(cb).StatusCode)
		runs := env.Ledger.Runs("transfer")
		require.NotEmpty(t, runs)
		assert.Equal(t, "alice", runs[len(runs)-1].User)
	})

	t.Run("a full store refuses new challenges with 503, never a user who passed one", func(t *testing.T) {
		env := NewEnv(t, a, Options{Store: func(now func() time.Time) stepup.Store {
			return stepup.NewMemoryStore(stepup.MemoryClock(now), stepup.MemoryLimits(24, 0))
		}})
		alice := env.NewBrowser()
		alice.Login("alice")
		cb := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		apiBody := `{"amount": 6000}`
		resp := alice.API(http.MethodPost, "/api/transfer", apiBody, nil)
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		var doc struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
		token := Param(alice.Complete(doc.URL), "token")

		// Others fill the store until it turns new challenges away.
		var full *Response
		for i := range 50 {
			b := env.NewBrowser()
			b.Login(fmt.Sprint("user", i))
			resp := b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
			if resp.StatusCode != http.StatusSeeOther {
				full = resp
				break
			}
		}
		require.NotNil(t, full, "the store never filled up")
		assert.Equal(t, http.StatusServiceUnavailable, full.StatusCode, full.Body)
		assert.NotEmpty(t, full.Header.Get("Retry-After"))
		assert.Empty(t, full.Header.Get("Location"))

		// alice passed her challenges before: both finish.
		done := alice.Get(cb)
		require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
		again := alice.Get(cb)
		assert.Equal(t, done.Body, again.Body, "the kept outcome fits too")
		retry := alice.API(http.MethodPost, "/api/transfer", apiBody, http.Header{stepup.TokenHeader: {token}})
		require.Equal(t, http.StatusOK, retry.StatusCode, retry.Body)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
		assert.Len(t, env.Ledger.Runs("apiTransfer"), 1)
	})

	t.Run("a store that cannot take the spent token: the passed callback is 503 and can be tried again", func(t *testing.T) {
		// A MemoryStore reserves room for what follows every challenge it
		// accepts; a store without such a reservation may still be full
		// when the token is spent.
		var full atomic.Bool
		env := NewEnv(t, a, Options{Store: func(now func() time.Time) stepup.Store {
			return refusingSpent{Store: stepup.NewMemoryStore(stepup.MemoryClock(now)), full: &full}
		}})
		alice := env.NewBrowser()
		alice.Login("alice")
		cb := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))

		full.Store(true)
		busy := alice.Get(cb)
		assert.Equal(t, http.StatusServiceUnavailable, busy.StatusCode, busy.Body)
		assert.NotEmpty(t, busy.Header.Get("Retry-After"))
		assert.Empty(t, env.Ledger.Runs("transfer"), "nothing ran for alice")

		full.Store(false) // room again
		done := alice.Get(cb)
		require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
		runs := env.Ledger.Runs("transfer")
		require.Len(t, runs, 1)
		assert.Equal(t, "alice", runs[0].User)
	})
}

// refusingSpent is a store that answers ErrStoreFull to a spent token
// (KindUsed) while full is set.
type refusingSpent struct {
	stepup.Store
	full *atomic.Bool
}

func (s refusingSpent) Put(ctx context.Context, rec *stepup.Record) error {
	if rec.Kind == stepup.KindUsed && s.full.Load() {
		return stepup.ErrStoreFull
	}
	return s.Store.Put(ctx, rec)
}

// openUntilRefused opens up to max browser challenges on POST /transfer,
// and completes each when complete is set, until the guard refuses with a
// 429 (a cap) or a 503 (a full store); it returns how many it opened and
// that status (0 when it stopped at max). A 431 (headers over the guard's
// cap) moves on to header(i+1): nothing was tracked. Any other answer
// fails.
func openUntilRefused(t *testing.T, b *Browser, body string, header func(i int) http.Header, complete bool, max int) (int, int) {
	t.Helper()
	opened, i := 0, 0
	for opened < max {
		var h http.Header
		if header != nil {
			h = header(i)
		}
		resp := b.Do(http.MethodPost, "/transfer", Form, body, h)
		switch resp.StatusCode {
		case http.StatusSeeOther:
			challenge := b.Challenge(resp)
			opened++
			if complete {
				done := b.Get(b.Complete(challenge))
				require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
			}
		case http.StatusRequestHeaderFieldsTooLarge:
			i++
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			return opened, resp.StatusCode
		default:
			require.Failf(t, "unexpected answer", "%d %s", resp.StatusCode, resp.Body)
		}
	}
	return opened, 0
}

// dropCookie makes the browser forget every cookie named name that the
// server sets, as a client that wants a fresh session each time would.
func (b *Browser) dropCookie(name string) {
	b.Jar = dropJar{b.Jar, name}
	b.C.Jar = b.Jar
}

type dropJar struct {
	http.CookieJar
	name string
}

func (j dropJar) SetCookies(u *url.URL, cookies []*http.Cookie) {
	var keep []*http.Cookie
	for _, c := range cookies {
		if c.Name != j.name {
			keep = append(keep, c)
		}
	}
	j.CookieJar.SetCookies(u, keep)
}
