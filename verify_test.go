package stepup_test

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestStepUpTokenFromTheRequestProvesNothingByItself(t *testing.T) {
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{})
	b := env.NewBrowser()
	b.Login("alice")

	// A completed challenge for another action: PUT /profile.
	profile := b.API(http.MethodPut, "/profile", `{}`, nil)
	require.Equal(t, http.StatusUnauthorized, profile.StatusCode, profile.Body)
	challengeURL := stepupChallengeURL(t, profile.Body)
	profileToken := stepuptest.Param(b.Complete(challengeURL), "token")

	for name, token := range map[string]string{
		"garbage":                    "garbage",
		"another action's token":     profileToken,
		"the challenge page's token": stepuptest.Param(challengeURL, "token"),
	} {
		t.Run(name, func(t *testing.T) {
			resp := b.API(http.MethodPost, "/api/transfer", `{"amount": 5000}`, http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			resp = b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", http.Header{stepup.TokenHeader: {token}})
			assert.Equal(t, http.StatusForbidden, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs("transfer"))
			assert.Empty(t, env.Ledger.Runs("apiTransfer"))
		})
	}
	// The profile token still does what it was issued for.
	resp := b.API(http.MethodPut, "/profile", `{}`, http.Header{stepup.TokenHeader: {profileToken}})
	assert.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
}

// stepupChallengeURL reads the challenge URL from an API challenge body.
func stepupChallengeURL(t *testing.T, body string) string {
	t.Helper()
	var doc struct{ URL string }
	require.NoError(t, json.Unmarshal([]byte(body), &doc))
	require.NotEmpty(t, doc.URL)
	return doc.URL
}
