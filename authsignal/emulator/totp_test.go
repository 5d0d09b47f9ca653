package emulator_test

import (
	"net/http"
	"net/url"
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func appCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	require.NoError(t, err)
	return c
}

// appPage opens the challenge, picks the authenticator app and returns the
// browser and the code page's csrf.
func appPage(t *testing.T, srv *emulator.Server, got trackResult) (*browser, string) {
	t.Helper()
	b := newBrowser(t)
	_, page := b.get(got.URL)
	require.Contains(t, page, `name="method" value="AUTHENTICATOR_APP"`)
	resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"AUTHENTICATOR_APP"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, page = b.get(srv.URL + resp.Header.Get("Location"))
	require.Contains(t, page, "Open your authenticator app")
	return b, csrfOf(t, page)
}

func submitCode(t *testing.T, b *browser, srv *emulator.Server, token, csrf, code string) *http.Response {
	t.Helper()
	resp, _ := b.post(srv.URL+"/challenge/verify", url.Values{"token": {token}, "csrf": {csrf}, "code": {code}})
	return resp
}

func TestTOTPVerifiesAtTheEmulatorsClock(t *testing.T) {
	clk := newClock() // 03:04:05: 5 s into a step
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, methodRules), Users: []emulator.User{tina}})
	got := track(t, srv, "tina", "pay", map[string]any{"redirectUrl": "https://app.example/cb"})
	b, csrf := appPage(t, srv, got)
	assert.Empty(t, srv.Outbox(), "nothing is sent for an app")

	resp := submitCode(t, b, srv, got.Token, csrf, appCode(t, appSecret, clk.Now()))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc := mustParse(t, resp.Header.Get("Location"))
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "AUTHENTICATOR_APP", v["verificationMethod"])
}

func TestTOTPWindow(t *testing.T) {
	for _, tc := range []struct {
		name string
		at   time.Duration // the code's time, from the emulator's clock
		ok   bool
	}{
		{"previous step", -30 * time.Second, true},
		{"next step", 30 * time.Second, true},
		{"two steps back", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
		// The clock is 5 s into its step: 35 s back is the first second of the previous step,
		// 36 s back the last second of the step before.
		{"edge of the previous step", -35 * time.Second, true},
		{"just past the window", -36 * time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clk := newClock()
			srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, methodRules), Users: []emulator.User{tina}})
			got := track(t, srv, "tina", "pay", nil)
			b, csrf := appPage(t, srv, got)
			resp := submitCode(t, b, srv, got.Token, csrf, appCode(t, appSecret, clk.Now().Add(tc.at)))
			if tc.ok {
				assert.Equal(t, http.StatusSeeOther, resp.StatusCode)
				assert.Equal(t, "CHALLENGE_SUCCEEDED", srv.Tracked()[0].State)
			} else {
				assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
				assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[0].State)
			}
		})
	}
}

func TestTOTPRefusals(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, methodRules), Users: []emulator.User{tina}})
	now := appCode(t, appSecret, clk.Now())

	t.Run("a wrong code counts as an attempt", func(t *testing.T) {
		got := track(t, srv, "tina", "pay", nil)
		b, csrf := appPage(t, srv, got)
		resp, page := b.post(srv.URL+"/challenge/verify", url.Values{"token": {got.Token}, "csrf": {csrf}, "code": {"000000"}})
		if now == "000000" {
			t.Skip("the right code happens to be 000000")
		}
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		assert.Contains(t, page, "That code is not right. 2 attempts left.")
	})

	t.Run("a code is good once", func(t *testing.T) {
		first := track(t, srv, "tina", "pay", nil)
		b, csrf := appPage(t, srv, first)
		require.Equal(t, http.StatusSeeOther, submitCode(t, b, srv, first.Token, csrf, now).StatusCode)

		second := track(t, srv, "tina", "pay", nil)
		b, csrf = appPage(t, srv, second)
		assert.Equal(t, http.StatusUnprocessableEntity, submitCode(t, b, srv, second.Token, csrf, now).StatusCode,
			"the same code again, in the same step, for another action")
		assert.Equal(t, http.StatusUnprocessableEntity,
			submitCode(t, b, srv, second.Token, csrf, appCode(t, appSecret, clk.Now().Add(-30*time.Second))).StatusCode,
			"a code of an earlier step than one used")
		assert.Equal(t, http.StatusSeeOther,
			submitCode(t, b, srv, second.Token, csrf, appCode(t, appSecret, clk.Now().Add(30*time.Second))).StatusCode,
			"the next step's code is new")
		clk.Advance(time.Minute)
		third := track(t, srv, "tina", "pay", nil)
		loc, err := srv.CompleteChallengeWith(ctx(t), third.URL, emulator.MethodAuthenticatorApp)
		require.NoError(t, err)
		assert.Equal(t, "AUTHENTICATOR_APP", validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["verificationMethod"])
	})

	t.Run("not offered, not accepted", func(t *testing.T) {
		got := track(t, srv, "tina", "textOnly", nil)
		b := newBrowser(t)
		_, page := b.get(got.URL)
		resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"AUTHENTICATOR_APP"}})
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
	})
}

func TestConfigRefusesAnAppWithoutASecret(t *testing.T) {
	for _, secret := range []string{"", "not base32!", "JBSWY3DP"} { // the last is 40 bits: too short
		_, err := emulator.New(emulator.Config{Users: []emulator.User{{ID: "u", Methods: []string{"AUTHENTICATOR_APP"}, TOTPSecret: secret}}})
		assert.ErrorContains(t, err, "AUTHENTICATOR_APP needs TOTPSecret", "%q", secret)
	}
	_, err := emulator.New(emulator.Config{Users: []emulator.User{{ID: "u", Methods: []string{"PASSKEY"}}}})
	assert.ErrorContains(t, err, "passkeys are registered on the hosted page")
}

var (
	secretRE = regexp.MustCompile(`id="totp-secret">([A-Z2-7]+)<`)
	qrRE     = regexp.MustCompile(`id="totp-qr" src="data:image/png;base64,[A-Za-z0-9+/=&#;]{100,}"`)
)

// enrolToPick runs an enrolment to the choice of method: email, code.
func enrolToPick(t *testing.T, srv *emulator.Server, got trackResult, email string) (*browser, string) {
	t.Helper()
	b := newBrowser(t)
	_, page := b.get(got.URL)
	resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "email": {email}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	out := srv.Outbox()
	code := out[len(out)-1].Code
	resp = submitCode(t, b, srv, got.Token, csrfOf(t, page), code)
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	_, page = b.get(srv.URL + resp.Header.Get("Location"))
	require.Contains(t, page, `action="/challenge/enrol"`)
	return b, page
}

func TestEnrolAnAuthenticatorApp(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, methodRules)})
	got := track(t, srv, "nina", "pay", map[string]any{"redirectUrl": "https://app.example/cb",
		"custom": map[string]any{"amount": 5000, "to": "bob"}})
	require.Equal(t, "CHALLENGE_REQUIRED", got.State)
	require.False(t, got.IsEnrolled)

	b, page := enrolToPick(t, srv, got, "nina@example.com")
	assert.Contains(t, page, "nina@example.com</span> is verified")
	assert.Contains(t, page, `value="AUTHENTICATOR_APP">Authenticator app`)
	assert.Contains(t, page, `value="EMAIL_OTP">Email codes`)
	assert.NotContains(t, page, `value="PASSKEY"`, "the action does not accept passkeys")
	assert.Contains(t, page, "<dd>5,000</dd>", "what is approved stays on top")

	resp, _ := b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"PASSKEY"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "a method the action does not accept")
	resp, _ = b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"AUTHENTICATOR_APP"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, page = b.get(srv.URL + resp.Header.Get("Location"))
	assert.Regexp(t, qrRE, page)
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "img-src data:")
	m := secretRE.FindStringSubmatch(page)
	require.NotNil(t, m, page)
	secret := m[1]

	resp = submitCode(t, b, srv, got.Token, csrfOf(t, page), appCode(t, secret, clk.Now().Add(-60*time.Second)))
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "outside the window")
	_, user := call(t, srv, http.MethodGet, "/v1/users/nina", nil)
	assert.Equal(t, false, user["isEnrolled"], "nothing is enrolled before the app's first code")

	resp = submitCode(t, b, srv, got.Token, csrfOf(t, page), appCode(t, secret, clk.Now()))
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	loc := mustParse(t, resp.Header.Get("Location"))
	assert.Equal(t, "app.example", loc.Host)
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "AUTHENTICATOR_APP", v["verificationMethod"])
	_, user = call(t, srv, http.MethodGet, "/v1/users/nina", nil)
	assert.Equal(t, []any{"AUTHENTICATOR_APP"}, user["enrolledVerificationMethods"])
	assert.Equal(t, "nina@example.com", user["email"])

	next := track(t, srv, "nina", "pay", nil)
	assert.Equal(t, []string{"AUTHENTICATOR_APP"}, next.AllowedVerificationMethods)
	b2, csrf := appPage(t, srv, next)
	assert.Equal(t, http.StatusUnprocessableEntity, submitCode(t, b2, srv, next.Token, csrf, appCode(t, secret, clk.Now())).StatusCode,
		"the enrolment's code is used")
	clk.Advance(30 * time.Second)
	assert.Equal(t, http.StatusSeeOther, submitCode(t, b2, srv, next.Token, csrf, appCode(t, secret, clk.Now())).StatusCode)
}

func TestEnrolPicksEmail(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules)})
	got := track(t, srv, "ed", "pay", nil)
	loc, err := srv.CompleteChallenge(ctx(t), got.URL) // the driver picks email OTP
	require.NoError(t, err)
	v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
	assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(t, "EMAIL_OTP", v["verificationMethod"])

	got = track(t, srv, "fay", "appOnly", nil)
	_, err = srv.CompleteChallenge(ctx(t), got.URL)
	require.ErrorContains(t, err, "offers no email OTP")
	assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[1].State)
}

func TestEnrolmentRefusals(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules), Users: []emulator.User{alice}})

	t.Run("no pick before the email is verified", func(t *testing.T) {
		got := track(t, srv, "gus", "pay", nil)
		b := newBrowser(t)
		_, page := b.get(got.URL)
		for _, m := range []string{"AUTHENTICATOR_APP", "EMAIL_OTP"} {
			resp, page := b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {m}})
			assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, m)
			assert.Contains(t, page, "Verify your email address first.")
		}
		resp, _ := b.post(srv.URL+"/challenge/passkey/begin", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}})
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		_, user := call(t, srv, http.MethodGet, "/v1/users/gus", nil)
		assert.Equal(t, false, user["isEnrolled"])
	})

	t.Run("an enrolled user adds a method with a code to the address it has", func(t *testing.T) {
		got := track(t, srv, "alice", "appOnly", nil)
		require.Equal(t, []string{}, got.AllowedVerificationMethods)
		b := newBrowser(t)
		_, page := b.get(got.URL)
		assert.Contains(t, page, `value="alice@example.com" readonly`)
		resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)},
			"method": {"EMAIL_OTP"}, "email": {"mallory@example.com"}})
		require.Equal(t, http.StatusSeeOther, resp.StatusCode)
		out := srv.Outbox()
		assert.Equal(t, "alice@example.com", out[len(out)-1].To, "the code goes to alice's address, whatever the form says")
	})

	t.Run("no code by email once the email is verified", func(t *testing.T) {
		got := track(t, srv, "hal", "appOnly", nil)
		b, page := enrolToPick(t, srv, got, "hal@example.com")
		resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}, "email": {"hal@example.com"}})
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode)
		resp, _ = b.post(srv.URL+"/challenge/verify", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "code": {srv.Outbox()[len(srv.Outbox())-1].Code}})
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "the email code does not finish an app-only enrolment")
		assert.Equal(t, "CHALLENGE_REQUIRED", validate(t, srv, map[string]any{"token": got.Token})["state"])
	})
}
