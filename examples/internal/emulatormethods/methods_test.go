package emulatormethods_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/webauthn"
	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/examples/internal/browsertest"
)

const rules = `
actions:
  changeEmail:
    default: CHALLENGE_REQUIRED
    enrol: true
    methods: [PASSKEY]
  transfer:
    default: CHALLENGE_REQUIRED
    enrol: true
    methods: [AUTHENTICATOR_APP]
`

// startEmulator serves an emulator at http://localhost:port: browsers
// accept WebAuthn over http on localhost only, and no IP address as an RP ID.
func startEmulator(t *testing.T) (*emulator.Emulator, string) {
	t.Helper()
	r, err := emulator.ParseRules([]byte(rules))
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://localhost:" + port
	e, err := emulator.NewHandler(emulator.Config{Rules: r, DevMode: true, PublicURL: base, Logf: t.Logf})
	require.NoError(t, err)
	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e, base
}

// api calls the emulator's API and decodes the answer.
func api(t *testing.T, base, path string, body any) map[string]any {
	t.Helper()
	b, err := json.Marshal(body)
	require.NoError(t, err)
	req, err := http.NewRequest(http.MethodPost, base+"/v1"+path, bytes.NewReader(b))
	require.NoError(t, err)
	req.SetBasicAuth(emulator.DefaultSecret, "")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var out map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&out))
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s: %v", path, out)
	return out
}

type session struct {
	t       *testing.T
	browser context.Context
	base    string
}

func (s session) do(steps ...chromedp.Action[chromedp.Void]) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.browser, 20*time.Second)
	defer cancel()
	require.NoError(s.t, chromedp.Do(ctx, steps...))
}

func (s session) text(id string) string {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(s.browser, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID(id)))
	require.NoError(s.t, err)
	return v
}

// track tracks action for user, with the amount and payee to approve, and
// returns the challenge URL after checking the state.
func (s session) track(user, action string, wantEnrolled bool) string {
	s.t.Helper()
	got := api(s.t, s.base, "/users/"+user+"/actions/"+action, map[string]any{
		"email": user + "@example.com", "custom": map[string]any{"amount": 5000, "to": "bob"}})
	require.Equal(s.t, "CHALLENGE_REQUIRED", got["state"])
	require.Equal(s.t, wantEnrolled, got["isEnrolled"])
	return got["url"].(string)
}

// verifyEmail runs the first step of an enrolment: the email code, which
// dev mode fills in.
func (s session) verifyEmail(challengeURL string) {
	s.t.Helper()
	s.do(chromedp.Navigate(challengeURL), chromedp.WaitVisible(chromedp.ID("email")))
	assert.Contains(s.t, s.text("details"), "5,000", "the page shows what is approved")
	s.do(chromedp.Click(chromedp.CSS(`button[value="EMAIL_OTP"]`)), chromedp.WaitVisible(chromedp.ID("dev-code")),
		chromedp.Click(chromedp.ID("verify")), chromedp.WaitVisible(chromedp.CSS(`form[action="/challenge/enrol"]`)))
}

// done waits for the done page and validates its token.
func (s session) done(wantMethod string) {
	s.t.Helper()
	s.do(chromedp.WaitVisible(chromedp.ID("token")))
	v := api(s.t, s.base, "/validate", map[string]any{"token": s.text("token")})
	assert.Equal(s.t, true, v["isValid"])
	assert.Equal(s.t, "CHALLENGE_SUCCEEDED", v["state"])
	assert.Equal(s.t, wantMethod, v["verificationMethod"])
}

func TestPasskeyRegistersThenAuthenticates(t *testing.T) {
	browser := browsertest.Chromium(t)
	_, base := startEmulator(t)
	s := session{t: t, browser: browser, base: base}

	ctx, cancel := context.WithTimeout(browser, 20*time.Second)
	defer cancel()
	auth := browsertest.Passkeys(t, browser)

	// Enrolment: a verified email, then a passkey, the only method the
	// action accepts.
	s.verifyEmail(s.track("pat", "changeEmail", false))
	s.do(chromedp.Click(chromedp.CSS(`button[value="PASSKEY"]`)), chromedp.WaitVisible(chromedp.ID("passkey")),
		chromedp.Click(chromedp.ID("passkey")))
	s.done(emulator.MethodPasskey)
	creds, err := chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
	require.NoError(t, err)
	require.Len(t, creds.Credentials, 1, "the authenticator holds the passkey")
	assert.Equal(t, "localhost", creds.Credentials[0].RpID)

	// Then the passkey signs in the next challenge.
	s.do(chromedp.Navigate(s.track("pat", "changeEmail", true)), chromedp.WaitVisible(chromedp.ID("passkey")))
	assert.NotContains(t, s.text("approve"), "Email", "only the passkey is offered")
	s.do(chromedp.Click(chromedp.ID("passkey")))
	s.done(emulator.MethodPasskey)
	creds, err = chromedp.Call(ctx, webauthn.GetCredentials, webauthn.GetCredentialsParams{AuthenticatorID: auth})
	require.NoError(t, err)
	assert.Positive(t, creds.Credentials[0].SignCount, "the authenticator signed")

	// A passkey that fails user verification is refused.
	_, err = chromedp.Call(ctx, webauthn.SetResponseOverrideBits, webauthn.SetResponseOverrideBitsParams{
		AuthenticatorID: auth, IsBadUV: ptr(true)})
	require.NoError(t, err)
	s.do(chromedp.Navigate(s.track("pat", "changeEmail", true)), chromedp.WaitVisible(chromedp.ID("passkey")),
		chromedp.Click(chromedp.ID("passkey")))
	waitText(t, s, "passkey-error", "The passkey was not accepted. 2 attempts left.")
}

func waitText(t *testing.T, s session, id, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := s.text(id)
		if strings.Contains(got, want) || time.Now().After(deadline) {
			assert.Contains(t, got, want)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ptr[T any](v T) *T { return &v }

func TestAuthenticatorAppEnrolsThenVerifies(t *testing.T) {
	browser := browsertest.Chromium(t)
	_, base := startEmulator(t)
	s := session{t: t, browser: browser, base: base}

	s.verifyEmail(s.track("tom", "transfer", false))
	s.do(chromedp.Click(chromedp.CSS(`button[value="AUTHENTICATOR_APP"]`)), chromedp.WaitVisible(chromedp.ID("totp-qr")))
	ctx, cancel := context.WithTimeout(browser, 10*time.Second)
	defer cancel()
	width, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.getElementById("totp-qr").naturalWidth`))
	require.NoError(t, err)
	assert.Equal(t, 200.0, width, "the QR code is shown (the page's CSP lets the data: image load)")
	secret := s.text("totp-secret")
	code, err := totp.GenerateCode(secret, time.Now())
	require.NoError(t, err)
	s.do(chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")))
	s.done(emulator.MethodAuthenticatorApp)

	// The next challenge asks for the app's code; the one just used is
	// refused, the next step's is taken.
	s.do(chromedp.Navigate(s.track("tom", "transfer", true)),
		chromedp.Click(chromedp.CSS(`button[value="AUTHENTICATOR_APP"]`)), chromedp.WaitVisible(chromedp.ID("code")),
		chromedp.SendKeys(chromedp.ID("code"), code), chromedp.Click(chromedp.ID("verify")))
	waitText(t, s, "error", "That code is not right.")
	next, err := totp.GenerateCode(secret, time.Now().Add(30*time.Second))
	require.NoError(t, err)
	s.do(chromedp.SendKeys(chromedp.ID("code"), next), chromedp.Click(chromedp.ID("verify")))
	s.done(emulator.MethodAuthenticatorApp)
}
