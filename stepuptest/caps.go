package stepuptest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// runCaps checks that the challenge caps never punish an honest user: a
// passed challenge gives its slot back, whichever way it was passed, and a
// thief holding the user's login session, but not the second factor,
// cannot lock the user's established browser out (SECURITY.md, threat 23).
func runCaps(t *testing.T, a Adapter) {
	t.Run("passed challenges give their slot back; unpassed ones count", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			opts Options
			pass func(t *testing.T, b *Browser, i int)
		}{
			{"callback replay", Options{}, passTransfer},
			{"callback replay, Config.SessionID", Options{SessionID: true}, passTransfer},
			{"GET pass", Options{}, passReport},
			{"API token retry", Options{}, passAPI},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := NewEnv(t, a, tc.opts)
				b := env.NewBrowser()
				b.Login("alice")
				// A treasurer approving payments: more in a row, in one
				// browser, than MaxChallengesPerSession's default (5).
				for i := range 6 {
					tc.pass(t, b, i)
				}
				// Pending, failed and cancelled challenges keep counting.
				var pending []string
				for i := range 5 {
					pending = append(pending, b.Challenge(b.Do(http.MethodPost, "/transfer", Form, fmt.Sprintf("amount=%d", 3000+i), nil)))
				}
				failed := b.Get(b.Fail(pending[0]))
				require.Equal(t, http.StatusForbidden, failed.StatusCode, failed.Body)
				cancelled := b.Get(b.Cancel(pending[1]))
				require.Equal(t, http.StatusForbidden, cancelled.StatusCode, cancelled.Body)
				tracked := len(env.Emulator.Tracked())
				over := b.Do(http.MethodPost, "/transfer", Form, "amount=4000", nil)
				assert.Equal(t, http.StatusTooManyRequests, over.StatusCode, over.Body)
				assert.Len(t, env.Emulator.Tracked(), tracked, "refused before tracking")

				// Passing a pending one gives its slot back.
				done := b.Get(b.Complete(pending[2]))
				require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
				b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=4001", nil))
				assert.Equal(t, http.StatusTooManyRequests, b.Do(http.MethodPost, "/transfer", Form, "amount=4002", nil).StatusCode)
			})
		}
	})

	t.Run("passed challenges beyond five times MaxChallengesPerUser per ParkTTL count", func(t *testing.T) {
		// A pace no person keeps up (100 per 10 minutes with the defaults);
		// an account passing its own challenges at machine speed could
		// otherwise fill the Store with what they leave there.
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 2, 1 }})
		b := env.NewBrowser()
		b.Login("alice")
		for i := range 10 + 1 {
			passTransfer(t, b, i)
		}
		over := b.Do(http.MethodPost, "/transfer", Form, "amount=3000", nil)
		assert.Equal(t, http.StatusTooManyRequests, over.StatusCode, "the eleventh pass counted")
		env.Clock.Advance(10 * time.Minute)
		passTransfer(t, b, 20)
		passTransfer(t, b, 21)
	})

	t.Run("a stolen login session that drops the guard's cookie cannot lock the user's established browser out", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			opts  Options
			thief int // challenges the thief opens before the 429
			fresh int // what a browser of the user that never passed a challenge gets then
		}{
			// Without Config.SessionID every request of the thief is a new
			// client: MaxChallengesPerUser (20) holds them, in the bucket of
			// clients that never passed a challenge.
			{"quick start", Options{}, 20, http.StatusTooManyRequests},
			// With it, the stolen login session's own cap (5), in that bucket.
			{"Config.SessionID", Options{SessionID: true}, 5, http.StatusSeeOther},
		} {
			t.Run(tc.name, func(t *testing.T) {
				env := NewEnv(t, a, tc.opts)
				user := env.NewBrowser()
				user.Login("alice")
				// The user's browser passed a challenge: it is established.
				passTransfer(t, user, 0)

				thief := env.NewBrowser()
				thief.stealLogin(user, "stepup")
				thief.dropCookie("stepup") // Config.SessionName's default
				opened, status := openUntilRefused(t, thief, "amount=5000", nil, false, 100)
				assert.Equal(t, http.StatusTooManyRequests, status)
				assert.Equal(t, tc.thief, opened)
				again := thief.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)
				assert.Equal(t, http.StatusTooManyRequests, again.StatusCode, "repeatably")

				// The user's browser still gets its challenge, and passes it.
				for i := range 6 {
					passTransfer(t, user, 10+i)
				}
				runs := env.Ledger.Runs("transfer")
				require.Len(t, runs, 7)
				for _, r := range runs {
					assert.Equal(t, "alice", r.User)
				}

				// A browser the user never passed a challenge in cannot be
				// told apart from the thief's clients (SECURITY.md).
				fresh := env.NewBrowser()
				fresh.Login("alice")
				assert.Equal(t, tc.fresh, fresh.Do(http.MethodPost, "/transfer", Form, "amount=6000", nil).StatusCode)
			})
		}
	})

	t.Run("the established mark is bound to the user and outlives logout", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.MaxChallengesPerUser, c.MaxChallengesPerSession = 2, 2 }})
		b := env.NewBrowser()
		b.Login("alice")
		passTransfer(t, b, 0)
		// Fresh clients fill alice's and bob's caps.
		for _, u := range []string{"alice", "bob"} {
			thief := env.NewBrowser()
			thief.Login(u)
			thief.dropCookie("stepup")
			opened, status := openUntilRefused(t, thief, "amount=5000", nil, false, 10)
			require.Equal(t, http.StatusTooManyRequests, status)
			require.Equal(t, 2, opened)
		}
		b.Do(http.MethodPost, "/logout", Form, "", nil)
		b.Login("alice")
		b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5001", nil))
		b.Login("bob") // the same browser, another user: not established for bob
		assert.Equal(t, http.StatusTooManyRequests, b.Do(http.MethodPost, "/transfer", Form, "amount=5002", nil).StatusCode)
	})

	t.Run("the established mark lasts 30 days after the last pass", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		passTransfer(t, b, 0)
		env.Clock.Advance(30*24*time.Hour - time.Second)
		kept := b.Do(http.MethodPost, "/logout", Form, "", nil)
		assert.Equal(t, 1, guardCookie(t, kept).MaxAge, "Forget keeps the mark for its last second")
		env.Clock.Advance(time.Second)
		gone := b.Do(http.MethodPost, "/logout", Form, "", nil)
		assert.Negative(t, guardCookie(t, gone).MaxAge, "then it holds nothing")
	})
}

// passTransfer passes a browser challenge on POST /transfer: the callback
// replays it.
func passTransfer(t *testing.T, b *Browser, i int) {
	t.Helper()
	body := fmt.Sprintf("amount=%d", 2000+i)
	done := b.Get(b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, body, nil))))
	require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
	require.Equal(t, "done: transfer POST /transfer "+body, done.Body)
}

// passReport passes a browser challenge on GET /report: the callback gives
// a pass, which the browser uses.
func passReport(t *testing.T, b *Browser, i int) {
	t.Helper()
	path := fmt.Sprintf("/report?n=%d", i)
	resumed := b.Get(b.Complete(b.Challenge(b.Get(path))))
	require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
	require.Equal(t, path, resumed.Header.Get("Location"))
	done := b.Get(resumed.Header.Get("Location"))
	require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
}

// passAPI passes an API challenge on POST /api/transfer: the client resends
// its request with the token.
func passAPI(t *testing.T, b *Browser, i int) {
	t.Helper()
	body := fmt.Sprintf(`{"amount": %d}`, 2000+i)
	resp := b.API(http.MethodPost, "/api/transfer", body, nil)
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
	var doc struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &doc))
	token := Param(b.Complete(doc.URL), "token")
	done := b.API(http.MethodPost, "/api/transfer", body, http.Header{stepup.TokenHeader: {token}})
	require.Equal(t, http.StatusOK, done.StatusCode, done.Body)
}

// stealLogin gives b the cookies of victim, but for those called one of
// skip: a thief replaying the victim's login session.
func (b *Browser) stealLogin(victim *Browser, skip ...string) {
	u := mustURL(b.env.Server.URL)
	var stolen []*http.Cookie
	for _, c := range victim.Jar.Cookies(u) {
		keep := true
		for _, s := range skip {
			keep = keep && c.Name != s
		}
		if keep {
			stolen = append(stolen, c)
		}
	}
	b.Jar.SetCookies(u, stolen)
}
