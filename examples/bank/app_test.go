package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// These tests drive the demo over real HTTP with a cookie jar, as a
// browser without JavaScript would; the emulator's Go API completes the
// challenges. browser_test.go runs the same flows in Chromium.

// testBank is the demo served on a loopback port.
type testBank struct {
	t    *testing.T
	app  *App
	url  string
	logs *syncBuffer
	now  *clock
	// authsignal completes challenges: the bank's emulator, or the
	// external one a test points the bank at.
	authsignal interface {
		CompleteChallenge(ctx context.Context, challengeURL string) (*url.URL, error)
	}
}

type clock struct{ offset atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Now().Add(time.Duration(c.offset.Load())) }
func (c *clock) Advance(d time.Duration) { c.offset.Add(int64(d)) }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func startBank(t *testing.T, edit ...func(*AppConfig)) *testBank {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	tb := &testBank{t: t, url: "http://" + ln.Addr().String(), logs: &syncBuffer{}, now: &clock{}}
	cfg := AppConfig{
		PublicURL: tb.url,
		Logger:    slog.New(slog.NewTextHandler(tb.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Now:       tb.now.Now,
	}
	for _, f := range edit {
		f(&cfg)
	}
	tb.app, err = NewApp(cfg)
	require.NoError(t, err)
	if emu := tb.app.Emulator(); emu != nil {
		tb.authsignal = emu
	}
	srv := &http.Server{Handler: tb.app.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		_ = tb.app.Close()
	})
	return tb
}

// user is one browser: a cookie jar that does not follow redirects.
type user struct {
	t    *testing.T
	bank *testBank
	hc   *http.Client
	jar  *cookiejar.Jar
}

type response struct {
	Status   int
	Header   http.Header
	Body     string
	Location string
}

func (tb *testBank) newUser() *user {
	jar, err := cookiejar.New(nil)
	require.NoError(tb.t, err)
	return &user{t: tb.t, bank: tb, jar: jar, hc: &http.Client{
		Jar:           jar,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (u *user) do(method, target, contentType, body string, header http.Header) response {
	u.t.Helper()
	if strings.HasPrefix(target, "/") {
		target = u.bank.url + target
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	require.NoError(u.t, err)
	for k, vs := range header {
		req.Header[k] = vs
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "text/html")
	}
	resp, err := u.hc.Do(req)
	require.NoError(u.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(u.t, err)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: string(b), Location: resp.Header.Get("Location")}
}

func (u *user) get(target string) response { return u.do(http.MethodGet, target, "", "", nil) }

// csrf is the token echo's CSRF middleware set in this browser's cookie;
// the pages' forms carry the same value.
func (u *user) csrf() string {
	base, _ := url.Parse(u.bank.url)
	for _, c := range u.jar.Cookies(base) {
		if c.Name == "_csrf" {
			return c.Value
		}
	}
	u.get("/login")
	for _, c := range u.jar.Cookies(base) {
		if c.Name == "_csrf" {
			return c.Value
		}
	}
	u.t.Fatal("no CSRF cookie")
	return ""
}

// post submits a form with the page's CSRF token.
func (u *user) post(path string, form url.Values) response {
	u.t.Helper()
	form.Set("_csrf", u.csrf())
	return u.do(http.MethodPost, path, "application/x-www-form-urlencoded", form.Encode(), nil)
}

// api sends JSON as the dashboard's script does.
func (u *user) api(body string, token string) response {
	u.t.Helper()
	h := http.Header{"Accept": {"application/json"}, "X-Csrf-Token": {u.csrf()}}
	if token != "" {
		h.Set("Step-Up-Token", token)
	}
	return u.do(http.MethodPost, "/api/transfer", "application/json", body, h)
}

func (u *user) login(name string) *user {
	u.t.Helper()
	resp := u.post("/login", url.Values{"username": {name}, "password": {name + "-password"}})
	if resp.Status == http.StatusSeeOther && !strings.HasPrefix(resp.Location, "/") {
		// A browser this user never signed in from: the second factor first.
		back, err := u.bank.authsignal.CompleteChallenge(ctx(u.t), resp.Location)
		require.NoError(u.t, err)
		resp = u.get(back.String())
	}
	require.Equal(u.t, http.StatusSeeOther, resp.Status, resp.Body)
	require.Equal(u.t, "/dashboard", resp.Location)
	return u
}

// balance reads the account over the JSON API, in cents.
func (u *user) balance() int64 {
	u.t.Helper()
	resp := u.do(http.MethodGet, "/api/account", "", "", http.Header{"Accept": {"application/json"}})
	require.Equal(u.t, http.StatusOK, resp.Status, resp.Body)
	var acct struct {
		BalanceCents int64 `json:"balanceCents"`
	}
	require.NoError(u.t, json.Unmarshal([]byte(resp.Body), &acct))
	return acct.BalanceCents
}

// challenged asserts a 303 to the emulator's challenge page.
func (tb *testBank) challenged(resp response) string {
	tb.t.Helper()
	require.Equal(tb.t, http.StatusSeeOther, resp.Status, resp.Body)
	require.True(tb.t, strings.HasPrefix(resp.Location, tb.app.EmulatorURL()+"/challenge?token="), resp.Location)
	return resp.Location
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func (tb *testBank) complete(challengeURL string) string {
	tb.t.Helper()
	back, err := tb.app.Emulator().CompleteChallenge(ctx(tb.t), challengeURL)
	require.NoError(tb.t, err)
	require.True(tb.t, strings.HasPrefix(back.String(), tb.url+callbackPath+"?"), back.String())
	return back.String()
}

// tracked returns the step-up actions tracked so far, without the
// sign-ins (signin_test.go tests those).
func (tb *testBank) tracked() []emulator.TrackedAction {
	var out []emulator.TrackedAction
	for _, a := range tb.app.Emulator().Tracked() {
		if a.Action != "signIn" {
			out = append(out, a)
		}
	}
	return out
}

var transferRef = regexp.MustCompile(`^/transfers/[0-9a-f]{16}$`)

func TestSmallTransferPassesWithoutChallenge(t *testing.T) {
	tb := startBank(t)
	alice, bob := tb.newUser().login("alice"), tb.newUser().login("bob")
	before, bobBefore := alice.balance(), bob.balance()

	resp := alice.post("/transfer", url.Values{"amount": {"50"}, "to": {"bob"}})
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	require.Regexp(t, transferRef, resp.Location)
	page := alice.get(resp.Location)
	assert.Contains(t, page.Body, "Transfer of <strong>€50.00</strong> to <strong>bob</strong> done without extra verification.")

	assert.Equal(t, before-50_00, alice.balance())
	assert.Equal(t, bobBefore+50_00, bob.balance())
	require.Len(t, tb.tracked(), 1)
	assert.Equal(t, emulator.StateAllow, tb.tracked()[0].State)
	assert.Equal(t, 50.0, tb.tracked()[0].Custom["amount"], "the policy sends the form amount as a number")
}

func TestLargeTransferRunsOnceAfterVerification(t *testing.T) {
	tb := startBank(t)
	alice, bob := tb.newUser().login("alice"), tb.newUser().login("bob")
	before, bobBefore := alice.balance(), bob.balance()

	challenge := tb.challenged(alice.post("/transfer", url.Values{"amount": {"5000"}, "to": {"bob"}}))
	assert.Equal(t, before, alice.balance(), "nothing moves while the transfer waits for the step-up")
	require.Len(t, tb.tracked(), 1)
	assert.Equal(t, emulator.StateChallengeRequired, tb.tracked()[0].State)
	assert.Equal(t, []string{"large-transfer"}, tb.tracked()[0].RuleIDs)

	callback := tb.complete(challenge)
	resp := alice.get(callback)
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	require.Regexp(t, transferRef, resp.Location)
	result := resp.Location
	page := alice.get(result)
	assert.Contains(t, page.Body, "Transfer of <strong>€5,000.00</strong> to <strong>bob</strong> done after verification.")
	assert.Equal(t, before-5000_00, alice.balance(), "exactly the amount, exactly once")
	assert.Equal(t, bobBefore+5000_00, bob.balance())

	t.Run("refreshing the callback shows the same result and sends nothing", func(t *testing.T) {
		again := alice.get(callback)
		assert.Equal(t, http.StatusSeeOther, again.Status)
		assert.Equal(t, result, again.Location)
		assert.Equal(t, before-5000_00, alice.balance())
	})
	t.Run("refreshing the result page sends nothing", func(t *testing.T) {
		assert.Equal(t, http.StatusOK, alice.get(result).Status)
		assert.Equal(t, before-5000_00, alice.balance())
	})
	t.Run("another user's browser cannot use the callback", func(t *testing.T) {
		resp := bob.get(callback)
		assert.Equal(t, http.StatusForbidden, resp.Status)
		assert.Equal(t, http.StatusNotFound, bob.get(result).Status, "transfers are shown to their sender only")
		assert.Equal(t, before-5000_00, alice.balance())
	})
}

func TestAbandonedChallengeSendsNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		end  func(e *emulator.Emulator, ctx context.Context, url string) (*url.URL, error)
	}{
		{"cancel", (*emulator.Emulator).CancelChallenge},
		{"three wrong codes", (*emulator.Emulator).FailChallenge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBank(t)
			alice := tb.newUser().login("alice")
			before := alice.balance()
			challenge := tb.challenged(alice.post("/transfer", url.Values{"amount": {"2000"}, "to": {"bob"}}))
			back, err := tc.end(tb.app.Emulator(), ctx(t), challenge)
			require.NoError(t, err)

			resp := alice.get(back.String())
			assert.Equal(t, http.StatusForbidden, resp.Status)
			assert.Contains(t, resp.Body, "Verification not completed")
			assert.Contains(t, resp.Body, `data-code="step_up_failed"`)
			assert.Equal(t, before, alice.balance())
			assert.Equal(t, http.StatusForbidden, alice.get(back.String()).Status, "a refresh does not run it either")
			assert.Equal(t, before, alice.balance())
		})
	}
}

func TestAPITransfer(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	before := alice.balance()

	t.Run("a small amount passes at once", func(t *testing.T) {
		resp := alice.api(`{"amount": 20, "to": "bob"}`, "")
		require.Equal(t, http.StatusOK, resp.Status, resp.Body)
		assert.Contains(t, resp.Body, `"verified":"allow"`)
		before -= 20_00
		assert.Equal(t, before, alice.balance())
	})

	body := `{"amount": 3000, "to": "bob"}`
	resp := alice.api(body, "")
	require.Equal(t, http.StatusUnauthorized, resp.Status, resp.Body)
	assert.Contains(t, resp.Header.Get("WWW-Authenticate"), `Bearer error="insufficient_user_authentication"`)
	var challenge struct {
		Error, Action, URL, TokenHeader string
	}
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &challenge))
	assert.Equal(t, "insufficient_user_authentication", challenge.Error)
	assert.Equal(t, "transfer", challenge.Action)
	assert.Equal(t, "Step-Up-Token", challenge.TokenHeader)
	assert.Equal(t, before, alice.balance())

	// The popup: the challenge page sends the browser back to the guard's
	// callback, which hands the token to the opener page.
	callback := tb.complete(challenge.URL)
	handoff := alice.get(callback)
	require.Equal(t, http.StatusOK, handoff.Status, handoff.Body)
	assert.Contains(t, handoff.Body, `"stepup:token"`)
	assert.Contains(t, handoff.Header.Get("Content-Security-Policy"), "script-src 'nonce-", "the guard's own CSP, not the bank's")
	assert.Equal(t, before, alice.balance(), "the hand-off page runs nothing")
	cbURL, err := url.Parse(callback)
	require.NoError(t, err)
	token := cbURL.Query().Get("token")

	retry := alice.api(body, token)
	require.Equal(t, http.StatusOK, retry.Status, retry.Body)
	assert.Contains(t, retry.Body, `"message":"Transfer of €3,000.00 to bob done after verification (API)."`)
	assert.Equal(t, before-3000_00, alice.balance())

	again := alice.api(body, token)
	assert.Equal(t, http.StatusConflict, again.Status, again.Body)
	assert.Contains(t, again.Body, `"already_used"`)
	assert.Equal(t, before-3000_00, alice.balance(), "a token runs one request, once")

	t.Run("a token does not carry over to another body", func(t *testing.T) {
		resp := alice.api(`{"amount": 4000, "to": "bob"}`, "")
		require.Equal(t, http.StatusUnauthorized, resp.Status)
		require.NoError(t, json.Unmarshal([]byte(resp.Body), &challenge))
		back, err := url.Parse(tb.complete(challenge.URL))
		require.NoError(t, err)
		resp = alice.api(`{"amount": 5000, "to": "bob"}`, back.Query().Get("token"))
		assert.Equal(t, http.StatusForbidden, resp.Status, resp.Body)
		assert.Equal(t, before-3000_00, alice.balance())
	})
}

func TestChangeEmailAlwaysNeedsStepUp(t *testing.T) {
	tb := startBank(t, anyMethodForChangeEmail(t, true)) // a passkey needs a browser: methods_test.go, browser_test.go
	alice := tb.newUser().login("alice")
	challenge := tb.challenged(alice.post("/settings/email", url.Values{"email": {"alice@new.example"}}))
	assert.NotContains(t, alice.get("/settings").Body, "alice@new.example")

	resp := alice.get(tb.complete(challenge))
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	assert.Equal(t, "/settings?changed=email", resp.Location)
	assert.Contains(t, alice.get(resp.Location).Body, "Your email address is now alice@new.example.")
}

func TestAdminAreaRemembersTheStepUpForFiveMinutes(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")

	resp := alice.get(tb.complete(tb.challenged(alice.get("/admin"))))
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	require.Equal(t, "/admin", resp.Location)
	page := alice.get("/admin")
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	assert.Contains(t, page.Body, "You verified to open this page")

	tracked := len(tb.tracked())
	tb.now.Advance(4 * time.Minute)
	page = alice.get("/admin")
	require.Equal(t, http.StatusOK, page.Status)
	assert.Contains(t, page.Body, "Open under your recent verification")
	assert.Len(t, tb.tracked(), tracked, "no new track while remembered")

	tb.now.Advance(2 * time.Minute)
	tb.challenged(alice.get("/admin"))

	t.Run("logging out forgets the grant", func(t *testing.T) {
		tb := startBank(t)
		alice := tb.newUser().login("alice")
		alice.get(tb.complete(tb.challenged(alice.get("/admin"))))
		require.Equal(t, http.StatusOK, alice.get("/admin").Status)
		require.Equal(t, http.StatusSeeOther, alice.post("/logout", url.Values{}).Status)
		alice.login("alice")
		tb.challenged(alice.get("/admin"))
	})
}

// The settings page lists the user's remembered verifications, from every
// browser, and revoking one ends it in all of them.
func TestSettingsRevokeRememberedVerifications(t *testing.T) {
	tb := startBank(t)
	laptop, phone := tb.newUser().login("alice"), tb.newUser().login("alice")
	for _, b := range []*user{laptop, phone} {
		b.get(tb.complete(tb.challenged(b.get("/admin"))))
		require.Equal(t, http.StatusOK, b.get("/admin").Status, "remembered")
	}
	page := laptop.get("/settings")
	require.Equal(t, http.StatusOK, page.Status, page.Body)
	assert.Equal(t, 2, strings.Count(page.Body, `<tr class="grant"><td>adminAccess</td><td>EMAIL_OTP</td>`), page.Body)
	assert.Contains(t, tb.newUser().login("bob").get("/settings").Body, `id="no-grants"`, "bob's page lists none")

	resp := laptop.post("/settings/remembered/revoke", url.Values{"action": {"adminAccess"}})
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	require.Equal(t, "/settings?changed=revoked", resp.Location)
	for _, b := range []*user{laptop, phone} {
		tb.challenged(b.get("/admin"))
	}
	page = laptop.get("/settings?changed=revoked")
	assert.Contains(t, page.Body, `id="no-grants"`)
	assert.Contains(t, page.Body, "Done: the next time, you verify again.")

	t.Run("revoke all, and only with the page's CSRF token", func(t *testing.T) {
		phone.get(tb.complete(tb.challenged(phone.get("/admin"))))
		forged := phone.do(http.MethodPost, "/settings/remembered/revoke", "application/x-www-form-urlencoded", "", nil)
		assert.Equal(t, http.StatusBadRequest, forged.Status, "no CSRF token (echo: 400): nothing revoked")
		require.Equal(t, http.StatusOK, phone.get("/admin").Status)
		require.Equal(t, http.StatusSeeOther, phone.post("/settings/remembered/revoke", url.Values{}).Status)
		tb.challenged(phone.get("/admin"))
	})
}

// A customer is refused the admin area before any step-up: a challenge
// cannot make them staff, so none is tracked, parked or shown.
func TestAdminAreaIsForStaffOnly(t *testing.T) {
	tb := startBank(t)
	bob := tb.newUser().login("bob")

	for method, resp := range map[string]response{
		http.MethodGet:  bob.get("/admin"),
		http.MethodHead: bob.do(http.MethodHead, "/admin", "", "", nil),
		http.MethodPost: bob.post("/admin", url.Values{}), // past CSRF: the role check answers
	} {
		assert.Equal(t, http.StatusForbidden, resp.Status, method)
		assert.Empty(t, resp.Location, "%s: no challenge", method)
		assert.NotContains(t, resp.Body, "alice@bank.example")
	}
	assert.Empty(t, tb.tracked(), "nothing tracked for a customer")
	assert.NotContains(t, bob.get("/dashboard").Body, `href="/admin"`, "no admin link for a customer")

	t.Run("an API client gets the same 403 as JSON", func(t *testing.T) {
		resp := bob.do(http.MethodGet, "/admin", "", "", http.Header{"Accept": {"application/json"}})
		assert.Equal(t, http.StatusForbidden, resp.Status)
		assert.Empty(t, tb.tracked())
	})
	t.Run("logged out, the admin area still asks for a login first", func(t *testing.T) {
		resp := tb.newUser().get("/admin")
		assert.Equal(t, http.StatusSeeOther, resp.Status)
		assert.Equal(t, "/login", resp.Location)
	})
	t.Run("alice, the admin, is challenged and sees every account", func(t *testing.T) {
		alice := tb.newUser().login("alice")
		assert.Contains(t, alice.get("/dashboard").Body, `href="/admin"`)
		resp := alice.get(tb.complete(tb.challenged(alice.get("/admin"))))
		require.Equal(t, "/admin", resp.Location)
		page := alice.get("/admin")
		require.Equal(t, http.StatusOK, page.Status)
		assert.Contains(t, page.Body, "bob@bank.example")
	})
}

// The handlers read amounts exactly where and how the policy does, so a
// request cannot show the risk rules one amount and move another.
func TestAmountsCannotDisagreeWithThePolicy(t *testing.T) {
	forms := []struct {
		name   string
		target string
		body   string
		status int
	}{
		{"thousands separator", "/transfer", "amount=5%2C000&to=bob", http.StatusUnprocessableEntity}, // refused before the guard
		{"exponent", "/transfer", "amount=5e3&to=bob", http.StatusUnprocessableEntity},                // refused before the guard
		{"two amounts", "/transfer", "amount=10&amount=5000&to=bob", http.StatusBadRequest},
		// The review's attack with a stolen session: the guard used to drop
		// a body with one malformed pair and judge the query's amount.
		{"malformed pair, small amount in the query", "/transfer?amount=1", "amount=5000&to=bob&%", http.StatusBadRequest},
		{"query and body disagree", "/transfer?amount=1", "amount=5000&to=bob", http.StatusBadRequest},
		{"amount only in the query", "/transfer?amount=5000", "to=bob", http.StatusBadRequest},
		{"negative", "/transfer", "amount=-5000&to=bob", http.StatusUnprocessableEntity},
	}
	for _, tc := range forms {
		t.Run(tc.name, func(t *testing.T) {
			tb := startBank(t)
			alice := tb.newUser().login("alice")
			before := alice.balance()
			resp := alice.do(http.MethodPost, tc.target, "application/x-www-form-urlencoded", tc.body+"&_csrf="+alice.csrf(), nil)
			assert.Equal(t, tc.status, resp.Status, resp.Body)
			if resp.Status == http.StatusSeeOther {
				tb.challenged(resp)
			}
			assert.Equal(t, before, alice.balance())
		})
	}
	jsons := []struct {
		name, body string
		status     int
	}{
		{"key in another case", `{"amount": 10, "AMOUNT": 5000, "to": "bob"}`, http.StatusBadRequest},
		{"a second document", `{"amount": 10, "to": "bob"} {"amount": 5000}`, http.StatusBadRequest},
		{"a numeric string is challenged like a number", `{"amount": "5000", "to": "bob"}`, http.StatusUnauthorized},
		{"no amount is refused before the guard", `{"to": "bob"}`, http.StatusBadRequest},
	}
	for _, tc := range jsons {
		t.Run("json/"+tc.name, func(t *testing.T) {
			tb := startBank(t)
			alice := tb.newUser().login("alice")
			before := alice.balance()
			resp := alice.api(tc.body, "")
			assert.Equal(t, tc.status, resp.Status, resp.Body)
			assert.Equal(t, before, alice.balance())
		})
	}
}

func TestCSRFComesBeforeTheStepUp(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	before := alice.balance()

	resp := alice.do(http.MethodPost, "/transfer", "application/x-www-form-urlencoded", "amount=5000&to=mallory", nil)
	assert.Equal(t, http.StatusBadRequest, resp.Status, "no token")
	resp = alice.do(http.MethodPost, "/transfer", "application/x-www-form-urlencoded", "amount=5000&to=mallory&_csrf=forged", nil)
	assert.Equal(t, http.StatusForbidden, resp.Status, "wrong token")
	resp = alice.do(http.MethodPost, "/transfer", "application/x-www-form-urlencoded", "amount=5000&to=mallory",
		http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
	assert.Equal(t, http.StatusForbidden, resp.Status, "cross-site")
	assert.Empty(t, tb.tracked(), "a forged request is never parked or tracked")
	assert.Equal(t, before, alice.balance())
}

func TestLoginLogoutAndHeaders(t *testing.T) {
	tb := startBank(t)
	anon := tb.newUser()
	assert.Equal(t, "/login", anon.get("/dashboard").Location)
	assert.Equal(t, "/login", anon.get("/").Location)

	resp := anon.post("/login", url.Values{"username": {"alice"}, "password": {"bob-password"}})
	assert.Equal(t, http.StatusUnauthorized, resp.Status)
	assert.Contains(t, resp.Body, "do not match")
	resp = anon.post("/login", url.Values{"username": {"nobody"}, "password": {"x"}})
	assert.Equal(t, http.StatusUnauthorized, resp.Status)

	t.Run("the API answers JSON when not logged in", func(t *testing.T) {
		resp := anon.api(`{"amount": 5000, "to": "bob"}`, "")
		assert.Equal(t, http.StatusUnauthorized, resp.Status)
		assert.Contains(t, resp.Body, `"login_required"`)
		assert.Empty(t, tb.tracked())
	})

	alice := tb.newUser()
	alice.csrf()
	resp = alice.post("/login", url.Values{"username": {"alice"}, "password": {"alice-password"}})
	resp = alice.get(tb.complete(tb.challenged(resp))) // a browser alice never signed in from
	require.Equal(t, http.StatusSeeOther, resp.Status)
	var session *http.Cookie
	for _, c := range (&http.Response{Header: resp.Header}).Cookies() {
		if c.Name == sessionName {
			session = c
		}
	}
	require.NotNil(t, session)
	assert.True(t, session.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, session.SameSite, "the callback is a top-level GET from another site")

	page := alice.get("/dashboard")
	require.Equal(t, http.StatusOK, page.Status)
	h := page.Header
	assert.Contains(t, h.Get("Content-Security-Policy"), "form-action 'self' "+tb.app.EmulatorURL())
	assert.Equal(t, "DENY", h.Get("X-Frame-Options"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Equal(t, "no-store", h.Get("Cache-Control"))

	require.Equal(t, http.StatusSeeOther, alice.post("/logout", url.Values{}).Status)
	assert.Equal(t, "/login", alice.get("/dashboard").Location)
}

func TestLogsCarryNoSecrets(t *testing.T) {
	tb := startBank(t, func(c *AppConfig) { c.SessionSecret = strings.Repeat("s3cr3t-", 6) })
	alice := tb.newUser().login("alice")
	callback := tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"5000"}, "to": {"bob"}})))
	alice.get(callback)
	u, _ := url.Parse(callback)
	code, ok := tb.app.Emulator().LastCode("alice")
	require.True(t, ok)

	logs := tb.logs.String()
	assert.Contains(t, logs, "path=/stepup/callback")
	assert.Contains(t, logs, "event=replay")
	for name, secret := range map[string]string{
		"token": u.Query().Get("token"), "password": "alice-password", "session secret": "s3cr3t-",
		"form body": "amount=5000", "csrf": alice.csrf(),
	} {
		assert.NotContains(t, logs, secret, name)
	}
	// DevMode: the emulator logs the code it "sent", as its page shows it.
	assert.Contains(t, logs, code)
}

func TestPoliciesMustNameRealRoutes(t *testing.T) {
	file := filepath.Join(t.TempDir(), "policies.yaml")
	require.NoError(t, os.WriteFile(file, []byte("policies:\n  - {method: POST, route: /transfers, action: transfer}\n"), 0o600))
	_, err := NewApp(AppConfig{PublicURL: "http://127.0.0.1:1", PoliciesFile: file})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "POST /transfers: no such echo route")
}

// With AUTHSIGNAL_SECRET the bank starts no emulator and talks to the
// configured API; a standalone emulator stands in for Authsignal here.
func TestAgainstAnExternalAuthsignal(t *testing.T) {
	rules, err := emulator.ParseRules(mustRead(t, "rules.yaml"))
	require.NoError(t, err)
	srv, err := emulator.New(emulator.Config{Secret: "test-secret", Rules: rules,
		Users: []emulator.User{{ID: "alice", Email: "alice@bank.example"}}})
	require.NoError(t, err)
	t.Cleanup(srv.Close)

	tb := startBank(t, func(c *AppConfig) {
		c.AuthsignalSecret, c.AuthsignalAPIURL = "test-secret", srv.APIURL()
	})
	require.Nil(t, tb.app.Emulator())
	tb.authsignal = srv
	alice := tb.newUser().login("alice")
	before := alice.balance()
	resp := alice.post("/transfer", url.Values{"amount": {"1500"}, "to": {"bob"}})
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	back, err := srv.CompleteChallenge(ctx(t), resp.Location)
	require.NoError(t, err)
	resp = alice.get(back.String())
	require.Equal(t, http.StatusSeeOther, resp.Status, resp.Body)
	assert.Equal(t, before-1500_00, alice.balance())
}

func mustRead(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	require.NoError(t, err)
	return b
}

func TestParseAmountAndMoney(t *testing.T) {
	for in, want := range map[string]int64{"1": 100, "5000": 5000_00, "5000.5": 5000_50, "0.01": 1, "999999999.99": 999999999_99} {
		got, err := parseAmount(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "0", "0.00", "-1", "+1", "1.234", " 1", "1 ", "1e3", "0x10", "5,000", "1000000000", ".5", "5."} {
		_, err := parseAmount(in)
		assert.Error(t, err, in)
	}
	assert.Equal(t, "€5,000.00", money(5000_00))
	assert.Equal(t, "-€1,234,567.89", money(-1234567_89))
	assert.Equal(t, "€0.05", money(5))
	assert.Equal(t, "€100.00", money(100_00))
}

// A stolen login session cannot lock the real user out of step-up: the
// bank counts challenges per login session (Config.SessionID), so a thief
// who replays alice's cookie — dropping the guard's own cookie every time,
// as a script would — gets five challenges, and alice, logged in anew (her
// other device, or after logging out the stolen session), is still
// challenged and completes.
func TestStolenSessionCannotLockTheUserOut(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	base, _ := url.Parse(tb.url)
	thief := tb.newUser()
	stolen := alice.jar.Cookies(base)
	large := url.Values{"amount": {"5000"}, "to": {"bob"}}
	for i := 0; ; i++ {
		thief.jar = mustJar(t)
		thief.hc.Jar = thief.jar
		thief.jar.SetCookies(base, stolen) // the bank's session and CSRF cookies, never the guard's
		resp := thief.post("/transfer", large)
		if resp.Status == http.StatusTooManyRequests {
			assert.Equal(t, 5, i, "the thief's login session opens five challenges")
			break
		}
		tb.challenged(resp)
		require.Less(t, i, 20, "no cap held")
	}
	phone := tb.newUser().login("alice")
	before := phone.balance()
	resp := phone.get(tb.complete(tb.challenged(phone.post("/transfer", url.Values{"amount": {"1500"}, "to": {"bob"}}))))
	assert.Less(t, resp.Status, 400, resp.Body)
	assert.Equal(t, before-150000, phone.balance(), "alice's own transfer went through")
}

// The thief of alice's login session shares its id (Config.SessionID), so
// the five challenges it opens use up that session's cap; the browser alice
// passed a challenge in is established and counts apart: her next
// transfer is still challenged and goes through (SECURITY.md, threat 23).
func TestStolenSessionCannotLockTheVictimsBrowserOut(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	before := alice.balance()
	first := alice.get(tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"1500"}, "to": {"bob"}}))))
	require.Less(t, first.Status, 400, first.Body)

	base, _ := url.Parse(tb.url)
	var stolen []*http.Cookie
	for _, c := range alice.jar.Cookies(base) {
		if c.Name != "stepup" { // the guard's cookie (Config.SessionName) stays in alice's browser
			stolen = append(stolen, c)
		}
	}
	thief := tb.newUser()
	for i := 0; ; i++ {
		thief.jar = mustJar(t)
		thief.hc.Jar = thief.jar
		thief.jar.SetCookies(base, stolen)
		resp := thief.post("/transfer", url.Values{"amount": {"5000"}, "to": {"bob"}})
		if resp.Status == http.StatusTooManyRequests {
			assert.Equal(t, 5, i, "the stolen login session opens five challenges")
			break
		}
		tb.challenged(resp)
		require.Less(t, i, 20, "no cap held")
	}

	resp := alice.get(tb.complete(tb.challenged(alice.post("/transfer", url.Values{"amount": {"1500"}, "to": {"bob"}}))))
	assert.Less(t, resp.Status, 400, resp.Body)
	assert.Equal(t, before-300000, alice.balance(), "both of alice's transfers went through")
}

func mustJar(t *testing.T) *cookiejar.Jar {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return jar
}

// A customer refused the admin area keeps the bank's navigation.
func TestForbiddenPageKeepsTheNavigation(t *testing.T) {
	tb := startBank(t)
	bob := tb.newUser().login("bob")
	resp := bob.get("/admin")
	require.Equal(t, http.StatusForbidden, resp.Status)
	assert.Contains(t, resp.Body, `<a href="/dashboard">Accounts</a>`)
	assert.Contains(t, resp.Body, `id="logout"`)
	assert.Contains(t, resp.Body, `name="_csrf" value="`+bob.csrf()+`"`, "logging out works from here")
	assert.NotContains(t, resp.Body, `href="/admin"`)
}

// The account numbers are IBANs: two check digits that make the number
// 1 modulo 97.
func TestAccountNumbersAreIBANs(t *testing.T) {
	for _, u := range demoUsers {
		n := normalIBAN(u.IBAN)
		require.Len(t, n, 22, u.ID)
		var rem int
		for _, c := range n[4:] + n[:4] {
			v := int(c - '0')
			if c >= 'A' && c <= 'Z' {
				v = int(c-'A') + 10
			}
			if v >= 10 {
				rem = (rem*100 + v) % 97
			} else {
				rem = (rem*10 + v) % 97
			}
		}
		assert.Equal(t, 1, rem, u.ID)
	}
}

// The dashboard's script reads the account after an API transfer: the
// recent transactions come with it, written as the page writes them.
func TestAccountAPIListsRecentTransactions(t *testing.T) {
	tb := startBank(t)
	alice := tb.newUser().login("alice")
	require.Equal(t, http.StatusOK, alice.api(`{"amount": 20, "to": "bob"}`, "").Status)
	resp := alice.do(http.MethodGet, "/api/account", "", "", http.Header{"Accept": {"application/json"}})
	require.Equal(t, http.StatusOK, resp.Status)
	var acct struct {
		IBAN, Currency string
		Recent         []map[string]string
	}
	require.NoError(t, json.Unmarshal([]byte(resp.Body), &acct))
	assert.Equal(t, "DE40 1001 0010 0000 0123 45", acct.IBAN)
	assert.Equal(t, "EUR", acct.Currency)
	require.Len(t, acct.Recent, 1)
	assert.Equal(t, "bob", acct.Recent[0]["with"])
	assert.Equal(t, "-€20.00", acct.Recent[0]["amount"])
	assert.Equal(t, "without extra verification", acct.Recent[0]["verification"])
}
