package stepuptest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// RunSignIn runs the sign-in section of the suite (Guard.SignIn with
// Config.SignIn, action "signIn"). The adapter mounts Handlers.SignIn at
// POST /signin besides the routes Run needs.
func RunSignIn(t *testing.T, a Adapter) {
	t.Run("decisions", func(t *testing.T) { runSignInDecisions(t, a) })
	t.Run("browser challenge", func(t *testing.T) { runSignInBrowser(t, a) })
	t.Run("refusals", func(t *testing.T) { runSignInRefusals(t, a) })
	t.Run("api", func(t *testing.T) { runSignInAPI(t, a) })
	t.Run("caps", func(t *testing.T) { runSignInCaps(t, a) })
	t.Run("two instances", func(t *testing.T) { runSignInInstances(t, a) })
}

// SignIn posts the sign-in form as a browser navigation, with the right
// password and, when agent is not "", that User-Agent (which the suite's
// rules judge: "trusted" is allowed, "blocked" blocked, "review" held).
func (b *Browser) SignIn(user, agent string) *Response {
	b.T.Helper()
	var h http.Header
	if agent != "" {
		h = http.Header{"User-Agent": {agent}}
	}
	return b.Do(http.MethodPost, "/signin", Form, "user="+url.QueryEscape(user)+"&password="+url.QueryEscape(Password), h)
}

// SignInAPI posts the sign-in form as an API client (Accept:
// application/json), with token in Step-Up-Token when it is not "".
func (b *Browser) SignInAPI(user, token string) *Response {
	b.T.Helper()
	h := http.Header{"Accept": {"application/json"}}
	if token != "" {
		h.Set(stepup.TokenHeader, token)
	}
	return b.Do(http.MethodPost, "/signin", Form, "user="+url.QueryEscape(user)+"&password="+url.QueryEscape(Password), h)
}

// User returns who the application thinks is logged in in b ("" for
// nobody), through the unprotected /open.
func (b *Browser) User() string {
	b.T.Helper()
	before := len(b.env.Ledger.Runs("open"))
	resp := b.Do(http.MethodGet, "/open", "", "", nil)
	require.Equal(b.T, http.StatusOK, resp.StatusCode, resp.Body)
	runs := b.env.Ledger.Runs("open")
	require.Len(b.T, runs, before+1)
	return runs[len(runs)-1].User
}

// completions returns the users Config.SignIn.Complete ran for.
func (env *Env) completions() []string {
	var users []string
	for _, r := range env.Ledger.Runs("signIn") {
		users = append(users, r.User)
	}
	return users
}

// tokenOf is the token a callback URL carries.
func tokenOf(callbackURL string) string { return Param(callbackURL, "token") }

func runSignInDecisions(t *testing.T, a Adapter) {
	t.Run("ALLOW: Complete in this request, then 303 to Next", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.SignIn("alice", "trusted")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		assert.Equal(t, SignInNext, resp.Header.Get("Location"))
		assert.Equal(t, []string{"alice"}, env.completions())
		assert.Equal(t, "alice", b.User())
		signIns := env.Events.Of(stepup.EventSignIn)
		require.Len(t, signIns, 1)
		assert.True(t, signIns[0].SignIn)
		assert.Equal(t, "signIn", signIns[0].Action)
		assert.Equal(t, "alice", signIns[0].UserID)
		assert.NoError(t, signIns[0].Err, "the sign-in cookie was saved")
	})
	t.Run("ALLOW, API client: Complete, then 204", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.Do(http.MethodPost, "/signin", Form, "user=alice&password="+url.QueryEscape(Password),
			http.Header{"Accept": {"application/json"}, "User-Agent": {"trusted"}})
		assert.Equal(t, http.StatusNoContent, resp.StatusCode, resp.Body)
		assert.Equal(t, []string{"alice"}, env.completions())
	})
	for _, tc := range []struct {
		name, agent string
		status      int
		event       stepup.EventType
	}{
		{"BLOCK: 403, nothing starts", "blocked", http.StatusForbidden, stepup.EventBlock},
		{"REVIEW_REQUIRED: 403, nothing starts", "review", http.StatusForbidden, stepup.EventReview},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := NewEnv(t, a, Options{})
			b := env.NewBrowser()
			resp := b.SignIn("alice", tc.agent)
			assert.Equal(t, tc.status, resp.StatusCode, resp.Body)
			assert.Empty(t, env.completions())
			assert.Equal(t, "", b.User())
			evs := env.Events.Of(tc.event)
			require.Len(t, evs, 1)
			assert.True(t, evs[0].SignIn)
		})
	}
	t.Run("unenrolled user allowed by the rules: 403, nothing starts", func(t *testing.T) {
		env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider { return unenrolled{p} }})
		b := env.NewBrowser()
		resp := b.SignIn("alice", "trusted")
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Contains(t, resp.Body, "two-step verification")
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrUnenrolled)
		assert.Empty(t, env.completions())
		assert.Equal(t, "", b.User())
	})
	t.Run("device, IP address and user agent go to Authsignal; a known device is let in at once", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.DeviceID = func(r *http.Request) string { return r.Header.Get("X-Device") }
		}})
		b := env.NewBrowser()
		h := http.Header{"X-Device": {"dev-1"}, "User-Agent": {"Firefox/1"}}
		signIn := func() *Response {
			return b.Do(http.MethodPost, "/signin", Form, "user=alice&password="+url.QueryEscape(Password), h)
		}
		resp := b.Get(b.Complete(b.Challenge(signIn())))
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		tracked := env.Emulator.Tracked()
		require.NotEmpty(t, tracked)
		first := tracked[len(tracked)-1]
		assert.Equal(t, "signIn", first.Action)
		assert.Equal(t, "dev-1", first.Request.DeviceID)
		assert.Equal(t, "Firefox/1", first.Request.UserAgent)
		assert.Equal(t, "127.0.0.1", first.Request.IPAddress)

		again := signIn()
		assert.Equal(t, http.StatusSeeOther, again.StatusCode)
		assert.Equal(t, SignInNext, again.Header.Get("Location"), "the device is known now: allowed without a challenge")
		assert.Equal(t, []string{"alice", "alice"}, env.completions())
	})
	for _, f := range []struct {
		name  string
		fault func(*Env)
	}{
		{"provider down", func(env *Env) { env.Emulator.SetFault(emulator.Fault{Status: http.StatusServiceUnavailable}) }},
		{"provider garbage", func(env *Env) { env.Emulator.SetFault(emulator.Fault{Malformed: true}) }},
	} {
		t.Run(f.name+": 503 with Retry-After, nothing starts (no fail-open)", func(t *testing.T) {
			env := NewEnv(t, a, Options{})
			f.fault(env)
			b := env.NewBrowser()
			resp := b.SignIn("alice", "trusted")
			assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode, resp.Body)
			assert.Equal(t, "5", resp.Header.Get("Retry-After"))
			env.Emulator.ClearFaults()
			assert.Empty(t, env.completions())
			assert.Equal(t, "", b.User())
		})
	}
	t.Run("Complete fails: 500, logged with the reason, the pending sign-in ended", func(t *testing.T) {
		calls := 0
		var mu sync.Mutex
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.SignIn = &stepup.SignIn{Complete: func(http.ResponseWriter, *http.Request, string) error {
				mu.Lock()
				calls++
				mu.Unlock()
				return errors.New("user directory unreachable")
			}}
		}})
		b := env.NewBrowser()
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		resp := b.Get(cb)
		assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, resp.Body)
		assert.NotContains(t, resp.Body, "directory")
		err := env.Events.LastRefusal()
		require.NotNil(t, err)
		assert.Contains(t, err.Error(), "user directory unreachable")
		assert.ErrorIs(t, err, stepup.ErrInternal)

		again := b.Get(cb)
		assert.Less(t, again.StatusCode, 500, "a refresh is no 5xx")
		assert.GreaterOrEqual(t, again.StatusCode, 400, "and signs nobody in")
		mu.Lock()
		assert.Equal(t, 1, calls)
		mu.Unlock()
	})
}

// unenrolled answers every track as a user with no authenticator.
type unenrolled struct{ stepup.Provider }

func (u unenrolled) Track(ctx context.Context, user, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	resp, err := u.Provider.Track(ctx, user, action, req)
	if resp != nil {
		resp.IsEnrolled = false
	}
	return resp, err
}

func runSignInBrowser(t *testing.T, a Adapter) {
	t.Run("challenge: nobody is signed in until the callback, which completes once and goes to Next", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("guest") // an earlier session of someone else in this browser
		challenge := b.Challenge(b.SignIn("alice", ""))
		assert.Empty(t, env.completions())
		assert.Equal(t, "guest", b.User(), "nobody new is signed in before the second factor")
		evs := env.Events.Of(stepup.EventChallenge)
		require.Len(t, evs, 1)
		assert.True(t, evs[0].SignIn)
		assert.Equal(t, "sign-in: browser", evs[0].Reason)

		cb := b.Complete(challenge)
		// At rest the record is sealed (its plaintext is checked by the
		// root package's TestPendingSignInKeepsNoCredential).
		rec, err := env.Store.Get(context.Background(), Param(cb, "park"))
		require.NoError(t, err)
		assert.Equal(t, stepup.KindSignIn, rec.Kind)
		assert.Empty(t, rec.UserID, "sealed")
		assert.NotEmpty(t, rec.Sealed)
		kept, _ := json.Marshal(rec)
		assert.NotContains(t, string(kept), "horse")

		resp := b.Get(cb)
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		assert.Equal(t, SignInNext, resp.Header.Get("Location"))
		assert.Equal(t, []string{"alice"}, env.completions())
		assert.Equal(t, "alice", b.User())

		refresh := b.Get(cb)
		assert.Equal(t, http.StatusSeeOther, refresh.StatusCode, "a refresh is no 5xx: "+refresh.Body)
		assert.Equal(t, SignInNext, refresh.Header.Get("Location"))
		assert.Len(t, env.completions(), 1, "a refresh starts nothing")
	})
	t.Run("login CSRF: the callback opened in another browser signs nobody in", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		attacker := env.NewBrowser()
		cb := attacker.Complete(attacker.Challenge(attacker.SignIn("mallory", "")))
		victim := env.NewBrowser()
		resp := victim.Get(cb)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Equal(t, "", victim.User())
		refused := env.Events.Of(stepup.EventRefuse)
		require.NotEmpty(t, refused)
		assert.True(t, refused[len(refused)-1].SignIn)
		assert.Equal(t, "mallory", refused[len(refused)-1].UserID)

		// A victim in the middle of a sign-in of her own.
		signingIn := env.NewBrowser()
		signingIn.Challenge(signingIn.SignIn("alice", ""))
		resp = signingIn.Get(cb)
		assert.GreaterOrEqual(t, resp.StatusCode, 400, resp.Body)
		assert.Less(t, resp.StatusCode, 500, resp.Body)
		assert.Equal(t, "", signingIn.User())

		loggedIn := env.NewBrowser()
		loggedIn.Login("alice")
		resp = loggedIn.Get(cb)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Equal(t, "alice", loggedIn.User(), "still alice, not mallory")

		// The callback URL, opened elsewhere, ended the sign-in: it signs
		// nobody in later, not even in the browser that started it.
		resp = attacker.Get(cb)
		assert.GreaterOrEqual(t, resp.StatusCode, 400, resp.Body)
		assert.Less(t, resp.StatusCode, 500, resp.Body)
		assert.Equal(t, "", attacker.User())
		assert.Empty(t, env.completions())
	})
	t.Run("a callback of someone's sign-in opened where nobody is logged in ends it, whoever completed it", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		thief := env.NewBrowser() // has alice's password
		challenge := thief.Challenge(thief.SignIn("alice", ""))
		// Alice is tricked into completing the challenge: its callback
		// opens in her browser, not in the thief's.
		alice := env.NewBrowser()
		cb := alice.Complete(challenge)
		assert.Equal(t, http.StatusForbidden, alice.Get(cb).StatusCode)
		assert.Equal(t, "", alice.User())
		resp := thief.Get(cb) // the URL leaked to the thief later
		assert.GreaterOrEqual(t, resp.StatusCode, 400, resp.Body)
		assert.Equal(t, "", thief.User())
		assert.Empty(t, env.completions())
	})
	t.Run("the guard's own state is rotated at sign-in", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		b.Login("alice")
		parked := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		resp := b.SignIn("alice", "trusted")
		require.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		dropped := false
		for _, c := range resp.Cookies() {
			if c.Name == "stepup" && c.MaxAge < 0 {
				dropped = true
			}
		}
		assert.True(t, dropped, "the guard's session cookie is dropped at sign-in")
		after := b.Get(parked)
		assert.Equal(t, http.StatusForbidden, after.StatusCode, "a park of the session before the sign-in is gone: "+after.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
}

func runSignInRefusals(t *testing.T, a Adapter) {
	for _, end := range []struct {
		name string
		how  func(b *Browser, challengeURL string) string
	}{{"cancelled challenge", (*Browser).Cancel}, {"failed challenge", (*Browser).Fail}} {
		t.Run(end.name+": refused, nothing starts", func(t *testing.T) {
			env := NewEnv(t, a, Options{})
			b := env.NewBrowser()
			resp := b.Get(end.how(b, b.Challenge(b.SignIn("alice", ""))))
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.completions())
			assert.Equal(t, "", b.User())
		})
	}
	t.Run("the token of another pending sign-in of the same user: refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b1, b2 := env.NewBrowser(), env.NewBrowser()
		cb1 := b1.Complete(b1.Challenge(b1.SignIn("alice", "")))
		cb2 := b2.Complete(b2.Challenge(b2.SignIn("alice", "")))
		resp := b1.Get(WithParam(cb1, "token", tokenOf(cb2)))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("the token of another user: refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b1, b2 := env.NewBrowser(), env.NewBrowser()
		cb1 := b1.Complete(b1.Challenge(b1.SignIn("alice", "")))
		cb2 := b2.Complete(b2.Challenge(b2.SignIn("mallory", "")))
		resp := b1.Get(WithParam(cb1, "token", tokenOf(cb2)))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("the token of a step-up (another action): refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		other := env.NewBrowser()
		other.Login("alice")
		stepUp := other.Complete(other.Challenge(other.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil)))
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		resp := b.Get(WithParam(cb, "token", tokenOf(stepUp)))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("a provider that calls a foreign token valid: refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{Provider: func(p stepup.Provider) stepup.Provider {
			return lyingValidate{p, func(req authsignal.ValidateRequest) *authsignal.ValidateResponse {
				return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
					UserID: req.UserID, Action: req.Action, IdempotencyKey: "not-the-sign-in"}
			}}
		}})
		b := env.NewBrowser()
		resp := b.Get(b.Complete(b.Challenge(b.SignIn("alice", ""))))
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("a pending sign-in past ParkTTL: refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		env.Clock.Advance(11 * time.Minute)
		resp := b.Get(cb)
		assert.GreaterOrEqual(t, resp.StatusCode, 400, resp.Body)
		assert.Less(t, resp.StatusCode, 500, resp.Body)
		assert.Empty(t, env.completions())
	})
}

func runSignInAPI(t *testing.T, a Adapter) {
	t.Run("401 challenge; the retry with the token completes once; a spent token signs nobody in", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		resp := b.SignInAPI("alice", "")
		require.Equal(t, http.StatusUnauthorized, resp.StatusCode, resp.Body)
		assert.Contains(t, resp.Header.Get("WWW-Authenticate"), "insufficient_user_authentication")
		assert.NotContains(t, resp.Body, "horse")
		var body struct{ Error, Action, URL string }
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &body))
		assert.Equal(t, "signIn", body.Action)
		assert.Empty(t, env.completions())

		token := tokenOf(b.Complete(body.URL))
		client := env.NewBrowser() // API clients may keep no cookies
		ok := client.SignInAPI("alice", token)
		assert.Equal(t, http.StatusNoContent, ok.StatusCode, ok.Body)
		assert.Equal(t, []string{"alice"}, env.completions())

		again := env.NewBrowser().SignInAPI("alice", token)
		assert.Equal(t, http.StatusConflict, again.StatusCode, again.Body)
		assert.Len(t, env.completions(), 1)
	})
	t.Run("the token for another user's sign-in: refused", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		var body struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(b.SignInAPI("alice", "").Body), &body))
		token := tokenOf(b.Complete(body.URL))
		resp := env.NewBrowser().SignInAPI("mallory", token)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("the token of a browser sign-in is no API retry", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		token := tokenOf(b.Complete(b.Challenge(b.SignIn("alice", ""))))
		resp := env.NewBrowser().SignInAPI("alice", token)
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
		assert.Empty(t, env.completions())
	})
	t.Run("completed in a popup: the callback hands the token over and signs nobody in", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		b := env.NewBrowser()
		var body struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(b.SignInAPI("alice", "").Body), &body))
		cb := b.Complete(body.URL)
		page := b.Get(cb)
		assert.Equal(t, http.StatusOK, page.StatusCode, page.Body)
		assert.Contains(t, page.Body, "stepup:token")
		assert.Empty(t, env.completions())
		ok := b.SignInAPI("alice", tokenOf(cb))
		assert.Equal(t, http.StatusNoContent, ok.StatusCode, ok.Body)
		assert.Equal(t, []string{"alice"}, env.completions())
	})
	t.Run("a client that keeps no cookies: the popup still hands the token over", func(t *testing.T) {
		env := NewEnv(t, a, Options{})
		var body struct{ URL string }
		require.NoError(t, json.Unmarshal([]byte(env.NewBrowser().SignInAPI("alice", "").Body), &body))
		popup := env.NewBrowser()
		cb := popup.Complete(body.URL)
		page := popup.Get(cb)
		assert.Equal(t, http.StatusOK, page.StatusCode, page.Body)
		assert.Contains(t, page.Body, "stepup:token")
		ok := env.NewBrowser().SignInAPI("alice", tokenOf(cb))
		assert.Equal(t, http.StatusNoContent, ok.StatusCode, ok.Body)
		assert.Equal(t, []string{"alice"}, env.completions())
	})
}

func runSignInCaps(t *testing.T, a Adapter) {
	t.Run("lock-out attempt with the password only: the user still steps up and signs in from a known browser", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.MaxChallengesPerUser, c.MaxChallengesPerSession = 3, 2
		}})
		known := env.NewBrowser()
		require.Equal(t, http.StatusSeeOther, known.Get(known.Complete(known.Challenge(known.SignIn("alice", "")))).StatusCode)
		require.Equal(t, "alice", known.User())

		// The thief, from fresh clients, opens sign-in challenges until the cap.
		capped := false
		for i := 0; i < 10 && !capped; i++ {
			resp := env.NewBrowser().SignIn("alice", "")
			if resp.StatusCode == http.StatusTooManyRequests {
				capped = true
				assert.NotEmpty(t, resp.Header.Get("Retry-After"))
				break
			}
			known.Challenge(resp)
		}
		require.True(t, capped, "sign-in challenges are capped")
		assert.ErrorIs(t, env.Events.LastRefusal(), stepup.ErrTooManyChallenges)

		// The user's step-up is not blocked by it...
		known.Challenge(known.Do(http.MethodPost, "/transfer", Form, "amount=5000", nil))
		// ...nor signing in again from the browser the user signed in from.
		known.Challenge(known.SignIn("alice", ""))
		// Another user is not touched at all.
		env.NewBrowser().Challenge(env.NewBrowser().SignIn("bob", ""))
		assert.Len(t, env.completions(), 1)
	})
	t.Run("a known browser has its own cap", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.MaxChallengesPerUser, c.MaxChallengesPerSession = 3, 2
		}})
		known := env.NewBrowser()
		require.Equal(t, http.StatusSeeOther, known.Get(known.Complete(known.Challenge(known.SignIn("alice", "")))).StatusCode)
		statuses := []int{}
		for range 3 {
			statuses = append(statuses, known.SignIn("alice", "").StatusCode)
		}
		assert.Equal(t, []int{http.StatusSeeOther, http.StatusSeeOther, http.StatusTooManyRequests}, statuses)
	})
	t.Run("passed sign-in challenges give their slot back", func(t *testing.T) {
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) {
			c.MaxChallengesPerUser, c.MaxChallengesPerSession = 2, 1
		}})
		b := env.NewBrowser()
		for i := range 4 {
			resp := b.Get(b.Complete(b.Challenge(b.SignIn("alice", ""))))
			require.Equal(t, http.StatusSeeOther, resp.StatusCode, fmt.Sprintf("sign-in %d: %s", i+1, resp.Body))
		}
		api := env.NewBrowser()
		for i := range 3 {
			var body struct{ URL string }
			require.NoError(t, json.Unmarshal([]byte(api.SignInAPI("alice", "").Body), &body), fmt.Sprint("API sign-in ", i+1))
			resp := api.SignInAPI("alice", tokenOf(api.Complete(body.URL)))
			require.Equal(t, http.StatusNoContent, resp.StatusCode, resp.Body)
		}
		assert.Len(t, env.completions(), 7)
	})
}

func runSignInInstances(t *testing.T, a Adapter) {
	t.Run("20 concurrent callbacks over two instances: Complete runs exactly once", func(t *testing.T) {
		env, other := newTwoInstances(t, a)
		b := env.NewBrowser()
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		targets := []string{onInstance(cb, env.Server), onInstance(cb, other)}
		statuses := getAtOnce(b, targets, 20)
		done := 0
		for _, s := range statuses {
			assert.Contains(t, []int{http.StatusSeeOther, http.StatusConflict}, s, fmt.Sprint("a clear answer, never an error: ", statuses))
			if s == http.StatusSeeOther {
				done++
			}
		}
		assert.GreaterOrEqual(t, done, 1)
		assert.Equal(t, []string{"alice"}, env.completions(), "exactly one Complete")
		assert.Equal(t, "alice", b.User())
	})
	t.Run("challenge on one instance, callback on the other", func(t *testing.T) {
		env, other := newTwoInstances(t, a)
		b := env.NewBrowser()
		cb := b.Complete(b.Challenge(b.SignIn("alice", "")))
		resp := b.Get(onInstance(cb, other))
		assert.Equal(t, http.StatusSeeOther, resp.StatusCode, resp.Body)
		assert.Equal(t, []string{"alice"}, env.completions())
	})
}
