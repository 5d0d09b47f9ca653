package emulator_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

var carol = emulator.User{ID: "carol", Email: "carol@example.com", PhoneNumber: "+15551234567",
	Methods: []string{emulator.MethodEmailOTP, emulator.MethodSMS}}

func TestCompleteChallengeWithReportsTheMethodUsed(t *testing.T) {
	for _, method := range []string{emulator.MethodSMS, emulator.MethodEmailOTP} {
		t.Run(method, func(t *testing.T) {
			srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{carol}})
			got := track(t, srv, "carol", "changeEmail", map[string]any{"redirectUrl": "https://app.example/cb"})
			require.Equal(t, "CHALLENGE_REQUIRED", got.State)
			loc, err := srv.CompleteChallengeWith(ctx(t), got.URL, method)
			require.NoError(t, err)
			v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
			assert.Equal(t, "CHALLENGE_SUCCEEDED", v["state"])
			assert.Equal(t, method, v["verificationMethod"])

			status, action := call(t, srv, http.MethodGet, "/v1/users/carol/actions/changeEmail/"+got.IdempotencyKey, nil)
			require.Equal(t, http.StatusOK, status)
			assert.Equal(t, method, action["verificationMethod"])

			out := srv.Outbox()
			require.Len(t, out, 1)
			want := map[string]string{emulator.MethodSMS: "sms", emulator.MethodEmailOTP: "email"}[method]
			assert.Equal(t, want, out[0].Channel, "the code went by the chosen method")
		})
	}
}

func TestCompleteChallengeWithRefuses(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
	got := track(t, srv, "alice", "changeEmail", nil)

	_, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodSMS)
	require.ErrorContains(t, err, "does not offer SMS", "alice has no phone: the page offers no SMS")
	_, err = srv.CompleteChallengeWith(ctx(t), got.URL, "WHATSAPP")
	require.ErrorContains(t, err, "cannot drive")
	assert.Equal(t, "CHALLENGE_REQUIRED", srv.Tracked()[0].State, "nothing was settled")

	t.Run("a code already sent by another method", func(t *testing.T) {
		srv := start(t, emulator.Config{DevMode: true, Rules: mustRules(t, trackRules), Users: []emulator.User{alice}})
		got := track(t, srv, "alice", "changeEmail", nil)
		_, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodSMS)
		require.ErrorContains(t, err, "shows a EMAIL_OTP code, not SMS")
		loc, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodEmailOTP)
		require.NoError(t, err)
		v := validate(t, srv, map[string]any{"token": loc.Query().Get("token")})
		assert.Equal(t, emulator.MethodEmailOTP, v["verificationMethod"])
	})
}

const methodRules = `
actions:
  pay:
    default: CHALLENGE_REQUIRED
    enrol: true
    methods: [AUTHENTICATOR_APP, EMAIL_OTP]
  textOnly:
    default: CHALLENGE_REQUIRED
    methods: [SMS]
  passkeyOnly:
    default: CHALLENGE_REQUIRED
    enrol: true
    methods: [PASSKEY]
  appOnly:
    default: CHALLENGE_REQUIRED
    enrol: true
    methods: [AUTHENTICATOR_APP]
  any:
    default: CHALLENGE_REQUIRED
`

// A secret of 160 bits, as authenticator apps use.
const appSecret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"

var tina = emulator.User{ID: "tina", Email: "tina@example.com", Methods: []string{emulator.MethodEmailOTP, emulator.MethodAuthenticatorApp},
	TOTPSecret: appSecret}

func TestRulesMethods(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{`actions: {x: {methods: [PASSKEY, SMS, EMAIL_OTP, AUTHENTICATOR_APP]}}`, ""},
		{`actions: {x: {methods: [PUSH]}}`, `actions.x.methods: unknown method "PUSH"`},
		{`actions: {x: {methods: [passkey]}}`, `unknown method "passkey"`},
		{`actions: {x: {methods: [SMS, SMS]}}`, `actions.x.methods: SMS twice`},
		{`actions: {x: {methods: []}}`, `actions.x.methods: empty`},
	} {
		_, err := emulator.ParseRules([]byte(tc.yaml))
		if tc.err == "" {
			assert.NoError(t, err, tc.yaml)
		} else {
			assert.ErrorContains(t, err, tc.err, tc.yaml)
		}
	}
}

func TestTrackAllowedMethods(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules), Users: []emulator.User{tina, carol}})
	for _, tc := range []struct {
		user, action string
		want         []string
	}{
		{"tina", "any", []string{"EMAIL_OTP", "SMS", "AUTHENTICATOR_APP"}}, // no methods: email, SMS and what the user has
		{"tina", "pay", []string{"EMAIL_OTP", "AUTHENTICATOR_APP"}},        // the user's methods the action accepts, in the user's order
		{"tina", "textOnly", []string{}},                                   // none in common
		{"carol", "textOnly", []string{"SMS"}},
		{"carol", "pay", []string{"EMAIL_OTP"}},
		{"nobody", "passkeyOnly", []string{"PASSKEY"}},                // not enrolled: what the page can set up
		{"nobody", "pay", []string{"EMAIL_OTP", "AUTHENTICATOR_APP"}}, // in the page's order
	} {
		got := track(t, srv, tc.user, tc.action, nil)
		assert.Equal(t, tc.want, got.AllowedVerificationMethods, "%s %s", tc.user, tc.action)
	}
}

func TestPageOffersOnlyTheActionsMethods(t *testing.T) {
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules), Users: []emulator.User{carol}})
	got := track(t, srv, "carol", "textOnly", nil)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	assert.Contains(t, page, `name="method" value="SMS"`)
	assert.NotContains(t, page, `value="EMAIL_OTP"`, "carol has email OTP, but the action accepts SMS only")

	resp, page := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {"EMAIL_OTP"}})
	assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, "a method the action does not accept is refused")
	assert.Contains(t, page, "Choose one of the methods below.")
	assert.Empty(t, srv.Outbox(), "no code was sent")

	_, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodEmailOTP)
	require.ErrorContains(t, err, "does not offer EMAIL_OTP")
	loc, err := srv.CompleteChallengeWith(ctx(t), got.URL, emulator.MethodSMS)
	require.NoError(t, err)
	assert.Equal(t, "SMS", validate(t, srv, map[string]any{"token": loc.Query().Get("token")})["verificationMethod"])
}

func TestPageWithNoAcceptedMethodCannotVerify(t *testing.T) {
	sam := emulator.User{ID: "sam", PhoneNumber: "+15550100", Methods: []string{emulator.MethodSMS}}
	srv := start(t, emulator.Config{Rules: mustRules(t, methodRules), Users: []emulator.User{sam}})
	got := track(t, srv, "sam", "passkeyOnly", nil)
	require.Equal(t, "CHALLENGE_REQUIRED", got.State)
	b := newBrowser(t)
	_, page := b.get(got.URL)
	assert.Contains(t, page, "None of your verification methods is accepted for this action (it accepts PASSKEY)")
	assert.NotContains(t, page, `name="method"`)
	assert.NotContains(t, page, `id="email"`, "without an enrolled email, nothing can be set up: no address to take from a stranger")
	for _, m := range []string{"SMS", "EMAIL_OTP"} {
		resp, _ := b.post(srv.URL+"/challenge/send", url.Values{"token": {got.Token}, "csrf": {csrfOf(t, page)}, "method": {m}, "email": {"x@example.com"}})
		assert.Equal(t, http.StatusUnprocessableEntity, resp.StatusCode, m)
	}
	assert.Empty(t, srv.Outbox())
}
