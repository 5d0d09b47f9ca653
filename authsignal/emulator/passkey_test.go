package emulator_test

import (
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

// passkeyPage runs an enrolment to the passkey step and returns the browser
// and the page. (Registering and using passkeys needs a browser: see
// examples/internal/emulatormethods.)
func passkeyPage(t *testing.T, srv *emulator.Server, got trackResult) (*browser, *http.Response, string) {
	t.Helper()
	b, page := enrolToPick(t, srv, got, "pat@example.com")
	assert.Contains(t, page, `value="PASSKEY">Passkey`)
	resp, _ := b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"PASSKEY"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	resp, page = b.get(srv.URL + resp.Header.Get("Location"))
	require.Contains(t, page, `id="passkey" type="button" data-register="true"`)
	return b, resp, page
}

func passkeyCall(t *testing.T, b *browser, srv *emulator.Server, path, token, csrf string, extra url.Values) (int, map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}, "csrf": {csrf}}
	for k, v := range extra {
		form[k] = v
	}
	resp, body := b.postWith(srv.URL+path, form, http.Header{"Sec-Fetch-Site": {"same-origin"}})
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	var out map[string]any
	require.NoError(t, json.Unmarshal([]byte(body), &out), body)
	return resp.StatusCode, out
}

// startLocalhost serves an emulator at http://localhost:port, where
// browsers (and go-webauthn) accept a WebAuthn relying party.
func startLocalhost(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	cfg.PublicURL = "http://localhost:" + port
	e, err := emulator.NewHandler(cfg)
	require.NoError(t, err)
	hs := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	return &emulator.Server{Emulator: e, URL: cfg.PublicURL} // not Close: hs is closed above
}

func TestPasskeyNeedsAHostName(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules)}) // http://127.0.0.1:port
	got := track(t, srv, "pat", "passkeyOnly", nil)
	b, _, page := passkeyPage(t, srv, got)
	status, out := passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrfOf(t, page), nil)
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Contains(t, out["error"], "browsers refuse an IP address (127.0.0.1) as the relying party; open the emulator as http://localhost:<port>")
}

func TestPasskeyPageAndCeremonyChecks(t *testing.T) {
	srv := startLocalhost(t, emulator.Config{Rules: mustRules(t, methodRules)})
	got := track(t, srv, "pat", "passkeyOnly", map[string]any{"redirectUrl": "https://app.example/cb"})
	b, resp, page := passkeyPage(t, srv, got)
	csp := resp.Header.Get("Content-Security-Policy")
	assert.Regexp(t, `script-src 'nonce-[A-Za-z0-9_-]+'; connect-src 'self'`, csp, "the passkey script runs, and fetches from the emulator only")
	assert.Contains(t, page, "navigator.credentials.create")
	assert.NotContains(t, page, "postMessage", "redirect mode: no message to an opener")
	csrf := csrfOf(t, page)

	status, out := passkeyCall(t, b, srv, "/challenge/passkey/finish", got.Token, csrf, url.Values{"credential": {"{}"}})
	assert.Equal(t, http.StatusUnprocessableEntity, status)
	assert.Equal(t, "No passkey ceremony is under way: start again.", out["error"])

	status, out = passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrf, nil)
	require.Equal(t, http.StatusOK, status, "%v", out)
	pk := out["publicKey"].(map[string]any)
	assert.Equal(t, "localhost", pk["rp"].(map[string]any)["id"], "the RP ID is the emulator's host")
	assert.NotEmpty(t, pk["challenge"])
	assert.Equal(t, "required", pk["authenticatorSelection"].(map[string]any)["userVerification"])

	for i, want := range []string{"The passkey was not accepted. 2 attempts left.", "The passkey was not accepted. 1 attempt left."} {
		if i > 0 {
			status, _ = passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrf, nil)
			require.Equal(t, http.StatusOK, status)
		}
		status, out = passkeyCall(t, b, srv, "/challenge/passkey/finish", got.Token, csrf, url.Values{"credential": {`{"id":"x","type":"public-key"}`}})
		assert.Equal(t, http.StatusUnprocessableEntity, status)
		assert.Equal(t, want, out["error"])
	}
	status, out = passkeyCall(t, b, srv, "/challenge/passkey/finish", got.Token, csrf, url.Values{"credential": {"{}"}})
	assert.Equal(t, http.StatusUnprocessableEntity, status, "each ceremony takes one answer: begin again")
	status, _ = passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrf, nil)
	require.Equal(t, http.StatusOK, status)
	status, out = passkeyCall(t, b, srv, "/challenge/passkey/finish", got.Token, csrf, url.Values{"credential": {"garbage"}})
	assert.Equal(t, http.StatusOK, status)
	loc := mustParse(t, out["location"].(string))
	assert.Equal(t, "app.example", loc.Host, "the third failure settles the action and sends the browser back")
	assert.Equal(t, "CHALLENGE_FAILED", validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["state"])
	_, user := call(t, srv, http.MethodGet, "/v1/users/pat", nil)
	assert.Equal(t, false, user["isEnrolled"], "no passkey was registered")
}

func TestPasskeyRefusals(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules), Users: []emulator.User{carol}})

	t.Run("not offered", func(t *testing.T) {
		got := track(t, srv, "carol", "textOnly", nil)
		b := newBrowser(t)
		_, page := b.get(got.URL)
		assert.NotContains(t, page, `id="passkey"`)
		assert.NotContains(t, page, "<script", "no passkey: redirect mode runs no script")
		status, out := passkeyCall(t, b, srv, "/challenge/passkey/begin", got.Token, csrfOf(t, page), nil)
		assert.Equal(t, http.StatusUnprocessableEntity, status)
		assert.Equal(t, "This page offers no passkey now.", out["error"])
	})

	t.Run("forged", func(t *testing.T) {
		got := track(t, srv, "pia", "passkeyOnly", nil)
		b, _, page := passkeyPage(t, srv, got)
		resp, _ := b.postWith(srv.URL+"/challenge/passkey/begin", url.Values{"token": {got.Token}, "csrf": {"forged"}},
			http.Header{"Sec-Fetch-Site": {"same-origin"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "wrong csrf")
		resp, _ = b.postWith(srv.URL+"/challenge/passkey/begin", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}},
			http.Header{"Sec-Fetch-Site": {"cross-site"}})
		assert.Equal(t, http.StatusForbidden, resp.StatusCode, "from another site")
	})

	t.Run("the driver cannot", func(t *testing.T) {
		got := track(t, srv, "carol", "passkeyOnly", nil)
		_, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodPasskey)
		assert.ErrorContains(t, err, "cannot drive")
	})

	t.Run("the API does not enrol passkeys", func(t *testing.T) {
		status, out := call(t, srv, http.MethodPost, "/v1/users/carol/authenticators", map[string]any{"verificationMethod": "PASSKEY"})
		assert.Equal(t, http.StatusBadRequest, status)
		assert.Contains(t, out["errorDescription"], "registers passkeys on the hosted page only")
	})
}

func TestAPIEnrolsAnAuthenticatorApp(t *testing.T) {
	clk := newClock()
	srv := start(t, emulator.Config{Now: clk.Now, Rules: mustRules(t, methodRules)})
	for _, uri := range []string{
		"", "otpauth://hotp/x?secret=" + appSecret, "otpauth://totp/x?secret=" + appSecret + "&digits=8",
		"otpauth://totp/x?secret=" + appSecret + "&period=60", "otpauth://totp/x?secret=" + appSecret + "&algorithm=SHA256",
		"otpauth://totp/x?secret=JBSWY3DP",
	} {
		status, out := call(t, srv, http.MethodPost, "/v1/users/ann/authenticators", map[string]any{"verificationMethod": "AUTHENTICATOR_APP", "otpUri": uri})
		assert.Equal(t, http.StatusBadRequest, status, uri)
		assert.Contains(t, out["errorDescription"], "AUTHENTICATOR_APP needs an otpUri", uri)
	}
	status, out := call(t, srv, http.MethodPost, "/v1/users/ann/authenticators",
		map[string]any{"verificationMethod": "AUTHENTICATOR_APP", "otpUri": "otpauth://totp/Acme:ann?secret=" + appSecret + "&issuer=Acme"})
	require.Equal(t, http.StatusOK, status, "%v", out)
	assert.Equal(t, "AUTHENTICATOR_APP", out["authenticator"].(map[string]any)["verificationMethod"])

	got := track(t, srv, "ann", "appOnly", nil)
	b, csrf := appPage(t, srv, got)
	assert.Equal(t, http.StatusSeeOther, submitCode(t, b, srv, got.Token, csrf, appCode(t, appSecret, clk.Now())).StatusCode)
}

func TestPasskeyInPopupMode(t *testing.T) {
	srv := startLocalhost(t, emulator.Config{Rules: mustRules(t, methodRules), AppOrigins: []string{appOrigin}})
	got := track(t, srv, "win", "passkeyOnly", map[string]any{"custom": map[string]any{"amount": 5000, "to": "bob"}})
	got.URL += "&mode=popup"
	b, page := enrolToPick(t, srv, got, "win@example.com")
	resp, _ := b.post(srv.URL+"/challenge/enrol", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "mode": {"popup"}, "method": {"PASSKEY"}})
	require.Equal(t, http.StatusSeeOther, resp.StatusCode)
	assert.Contains(t, resp.Header.Get("Location"), "&mode=popup", "the mode is kept")
	resp, page = b.get(srv.URL + resp.Header.Get("Location"))
	assert.Contains(t, page, "navigator.credentials.create", "the passkey script")
	s, ok := scriptOf(t, page)
	require.True(t, ok)
	assert.Equal(t, []string{appOrigin}, s.origins, "and the SDK's, under the same nonce")
	assert.Equal(t, 2, strings.Count(page, `<script nonce="`+s.nonce+`">`))
	assert.Contains(t, resp.Header.Get("Content-Security-Policy"), "script-src 'nonce-"+s.nonce+"'; connect-src 'self'")
	assert.Contains(t, page, "<dd>5,000</dd>", "what is approved, in popup mode too")
	assert.Contains(t, page, `name="mode" value="popup"`, "the script sends the mode with the form's fields")
}
