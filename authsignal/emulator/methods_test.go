package emulator_test

import (
	"net/http"
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
