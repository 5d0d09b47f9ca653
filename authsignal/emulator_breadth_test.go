package authsignal_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// The client's newer endpoints against the emulator: authenticators,
// queries, clearing user fields, DeleteUserAndActions, Retry-After.

const breadthRules = `
actions:
  login: {default: CHALLENGE_REQUIRED}
  wire: {default: REVIEW_REQUIRED}
`

func newBreadthEmulator(t *testing.T) (*emulator.Server, *authsignal.Client) {
	t.Helper()
	rules, err := emulator.ParseRules([]byte(breadthRules))
	require.NoError(t, err)
	emu, err := emulator.New(emulator.Config{Rules: rules})
	require.NoError(t, err)
	t.Cleanup(emu.Close)
	return emu, authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL()), authsignal.WithRetries(0))
}

func TestClientAuthenticatorsAgainstEmulator(t *testing.T) {
	ctx := context.Background()
	emu, c := newBreadthEmulator(t)

	list, err := c.GetAuthenticators(ctx, "dana")
	require.NoError(t, err)
	assert.Empty(t, list)
	resp, err := c.Track(ctx, "dana", "login", authsignal.TrackRequest{})
	require.NoError(t, err)
	assert.Equal(t, authsignal.StateAllow, resp.State, "not enrolled: let through, as with Authsignal")

	sms, err := c.EnrollVerifiedAuthenticator(ctx, "dana", authsignal.EnrollVerifiedAuthenticatorRequest{
		VerificationMethod: "SMS", PhoneNumber: "+64270000000"})
	require.NoError(t, err)
	assert.Equal(t, "SMS", sms.Authenticator.VerificationMethod)
	assert.Equal(t, "+64270000000", sms.Authenticator.PhoneNumber)
	assert.NotEmpty(t, sms.Authenticator.UserAuthenticatorID)

	list, err = c.GetAuthenticators(ctx, "dana")
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, sms.Authenticator.UserAuthenticatorID, list[0].UserAuthenticatorID)

	resp, err = c.Track(ctx, "dana", "login", authsignal.TrackRequest{RedirectURL: "https://app.example/cb"})
	require.NoError(t, err)
	require.Equal(t, authsignal.StateChallengeRequired, resp.State)
	back, err := emu.CompleteChallenge(ctx, resp.URL)
	require.NoError(t, err)
	v, err := c.Validate(ctx, authsignal.ValidateRequest{Token: back.Query().Get("token"), UserID: "dana", Action: "login"})
	require.NoError(t, err)
	assert.True(t, v.IsValid)
	assert.Equal(t, "SMS", v.VerificationMethod)

	require.NoError(t, c.DeleteAuthenticator(ctx, "dana", sms.Authenticator.UserAuthenticatorID))
	list, err = c.GetAuthenticators(ctx, "dana")
	require.NoError(t, err)
	assert.Empty(t, list)
	err = c.DeleteAuthenticator(ctx, "dana", sms.Authenticator.UserAuthenticatorID)
	var apiErr *authsignal.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)

	_, err = c.EnrollVerifiedAuthenticator(ctx, "dana", authsignal.EnrollVerifiedAuthenticatorRequest{VerificationMethod: "PASSKEY"})
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusBadRequest, apiErr.StatusCode)
	assert.Contains(t, apiErr.Description, "emulator cannot challenge PASSKEY")
}

func TestClientUsersAgainstEmulator(t *testing.T) {
	ctx := context.Background()
	_, c := newBreadthEmulator(t)

	u, err := c.UpdateUser(ctx, "erin", authsignal.UpdateUserRequest{
		Email: authsignal.String("erin@example.com"), EmailVerified: authsignal.Bool(true),
		PhoneNumber: authsignal.String("+64270000001"), PhoneNumberVerified: authsignal.Bool(false),
		DisplayName: authsignal.String("Erin"), Locale: authsignal.String("en-NZ"),
		Custom: map[string]any{"tier": "gold"},
	})
	require.NoError(t, err)
	assert.Equal(t, &authsignal.User{
		UserID: "erin", Email: "erin@example.com", EmailVerified: true, PhoneNumber: "+64270000001",
		DisplayName: "Erin", Locale: "en-NZ", EnrolledVerificationMethods: []string{},
		AllowedVerificationMethods: []string{"EMAIL_OTP", "SMS"},
		Custom:                     map[string]any{"tier": "gold"},
	}, u)

	u, err = c.UpdateUser(ctx, "erin", authsignal.UpdateUserRequest{DisplayName: authsignal.String(""), Custom: map[string]any{}})
	require.NoError(t, err)
	assert.Empty(t, u.DisplayName, "cleared")
	assert.Empty(t, u.Custom, "cleared")
	assert.Equal(t, "erin@example.com", u.Email, "a nil field is left alone")
	assert.True(t, u.EmailVerified)

	u, err = c.UpdateUser(ctx, "erin", authsignal.UpdateUserRequest{EmailVerified: authsignal.Bool(false)})
	require.NoError(t, err)
	assert.False(t, u.EmailVerified, "false is sent")

	_, err = c.UpdateUser(ctx, "frank", authsignal.UpdateUserRequest{Email: authsignal.String("frank@example.com")})
	require.NoError(t, err)
	page, err := c.QueryUsers(ctx, authsignal.QueryUsersRequest{Limit: 1})
	require.NoError(t, err)
	require.Len(t, page.Users, 1)
	assert.Equal(t, "erin", page.Users[0].UserID)
	assert.Equal(t, "erin", page.LastEvaluatedUserID)
	page, err = c.QueryUsers(ctx, authsignal.QueryUsersRequest{Limit: 1, LastEvaluatedUserID: page.LastEvaluatedUserID})
	require.NoError(t, err)
	require.Len(t, page.Users, 1)
	assert.Equal(t, "frank", page.Users[0].UserID)
	assert.Empty(t, page.LastEvaluatedUserID, "the last page")
	page, err = c.QueryUsers(ctx, authsignal.QueryUsersRequest{Email: "frank@example.com"})
	require.NoError(t, err)
	require.Len(t, page.Users, 1)
	assert.Equal(t, "frank", page.Users[0].UserID)
}

func TestClientQueryActionsAndDeleteAgainstEmulator(t *testing.T) {
	ctx := context.Background()
	emu, c := newBreadthEmulator(t)
	emu.EnrollUser(emulator.User{ID: "gina", Email: "gina@example.com"})

	login, err := c.Track(ctx, "gina", "login", authsignal.TrackRequest{IPAddress: "192.0.2.7", UserAgent: "UA/1"})
	require.NoError(t, err)
	wire, err := c.Track(ctx, "gina", "wire", authsignal.TrackRequest{})
	require.NoError(t, err)

	all, err := c.QueryUserActions(ctx, "gina", authsignal.QueryUserActionsRequest{})
	require.NoError(t, err)
	require.Len(t, all, 2)
	assert.Equal(t, wire.IdempotencyKey, all[0].IdempotencyKey, "newest first")
	assert.Equal(t, "192.0.2.7", all[1].IPAddress)
	assert.Equal(t, "UA/1", all[1].UserAgent)

	got, err := c.QueryUserActions(ctx, "gina", authsignal.QueryUserActionsRequest{
		Codes: []string{"login"}, FromDate: time.Now().Add(-time.Hour), State: authsignal.StateChallengeRequired})
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, login.IdempotencyKey, got[0].IdempotencyKey)
	got, err = c.QueryUserActions(ctx, "gina", authsignal.QueryUserActionsRequest{FromDate: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.Empty(t, got)

	require.NoError(t, c.DeleteUser(ctx, "gina"))
	u, err := c.GetUser(ctx, "gina")
	require.NoError(t, err)
	assert.False(t, u.IsEnrolled)
	got, err = c.QueryUserActions(ctx, "gina", authsignal.QueryUserActionsRequest{})
	require.NoError(t, err)
	assert.Len(t, got, 2, "DeleteUser keeps the actions")

	require.NoError(t, c.DeleteUserAndActions(ctx, "gina"))
	got, err = c.QueryUserActions(ctx, "gina", authsignal.QueryUserActionsRequest{})
	require.NoError(t, err)
	assert.Empty(t, got, "DeleteUserAndActions does not")
	_, err = c.GetAction(ctx, "gina", "login", login.IdempotencyKey)
	var apiErr *authsignal.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusNotFound, apiErr.StatusCode)
}

func TestClientSurfacesRetryAfterFromTheEmulator(t *testing.T) {
	emu, c := newBreadthEmulator(t)
	emu.SetFault(emulator.Fault{Status: http.StatusTooManyRequests, Times: 1})
	_, err := c.GetUser(context.Background(), "x")
	var apiErr *authsignal.APIError
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, "too_many_requests", apiErr.Code)
	assert.Equal(t, time.Second, apiErr.RetryAfter)
}
