package authsignal_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
)

// The client against the emulator: the same calls an application makes
// against the real API, end to end over HTTP.

func newEmulator(t *testing.T, now func() time.Time) (*emulator.Server, *authsignal.Client) {
	t.Helper()
	rules, err := emulator.ParseRules([]byte(`
actions:
  transfer:
    default: ALLOW
    rules:
      - {id: large, when: {field: custom.amount, op: gt, value: 1000}, state: CHALLENGE_REQUIRED}
  wire: {default: REVIEW_REQUIRED}
  nope: {default: BLOCK}
`))
	require.NoError(t, err)
	emu, err := emulator.New(emulator.Config{Rules: rules, AutoEnroll: true, Now: now})
	require.NoError(t, err)
	t.Cleanup(emu.Close)
	return emu, authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emu.APIURL()), authsignal.WithRetries(0))
}

func TestClientAgainstEmulator(t *testing.T) {
	ctx := context.Background()
	emu, c := newEmulator(t, nil)

	t.Run("track states", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			action string
			amount float64
			expect authsignal.State
		}{
			{"small transfer", "transfer", 10, authsignal.StateAllow},
			{"large transfer", "transfer", 5000, authsignal.StateChallengeRequired},
			{"review", "wire", 0, authsignal.StateReviewRequired},
			{"block", "nope", 0, authsignal.StateBlock},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, err := c.Track(ctx, "user/with slash", tc.action, authsignal.TrackRequest{
					Custom: map[string]any{"amount": tc.amount}, RedirectURL: "https://app.example/cb?park=1",
				})
				require.NoError(t, err)
				assert.Equal(t, tc.expect, resp.State)
				assert.NotEmpty(t, resp.IdempotencyKey)
				if tc.expect == authsignal.StateChallengeRequired {
					assert.Contains(t, resp.URL, emu.URL+"/challenge?")
					assert.NotEmpty(t, resp.Token)
				}
			})
		}
	})

	t.Run("challenge, validate, get and update action", func(t *testing.T) {
		resp, err := c.Track(ctx, "alice", "transfer", authsignal.TrackRequest{
			Custom: map[string]any{"amount": 5000}, RedirectURL: "https://app.example/cb?park=abc", IdempotencyKey: "key-1",
		})
		require.NoError(t, err)
		require.Equal(t, "key-1", resp.IdempotencyKey, "a client-chosen idempotency key is kept")

		before, err := c.Validate(ctx, authsignal.ValidateRequest{Token: resp.Token, UserID: "alice", Action: "transfer"})
		require.NoError(t, err)
		assert.False(t, before.IsValid)
		assert.Equal(t, authsignal.StateChallengeRequired, before.State)

		back, err := emu.CompleteChallenge(ctx, resp.URL)
		require.NoError(t, err)
		assert.Equal(t, "abc", back.Query().Get("park"))
		token := back.Query().Get("token")

		v, err := c.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: "alice", Action: "transfer"})
		require.NoError(t, err)
		assert.True(t, v.IsValid)
		assert.Equal(t, authsignal.StateChallengeSucceeded, v.State)
		assert.Equal(t, "alice", v.UserID)
		assert.Equal(t, "transfer", v.Action)
		assert.Equal(t, "key-1", v.IdempotencyKey)

		wrongUser, err := c.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: "bob", Action: "transfer"})
		require.NoError(t, err)
		assert.False(t, wrongUser.IsValid)
		wrongAction, err := c.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: "alice", Action: "other"})
		require.NoError(t, err)
		assert.False(t, wrongAction.IsValid)

		a, err := c.GetAction(ctx, "alice", "transfer", "key-1")
		require.NoError(t, err)
		assert.Equal(t, authsignal.StateChallengeSucceeded, a.State)
	})

	t.Run("settle a review", func(t *testing.T) {
		resp, err := c.Track(ctx, "alice", "wire", authsignal.TrackRequest{})
		require.NoError(t, err)
		a, err := c.UpdateAction(ctx, "alice", "wire", resp.IdempotencyKey, authsignal.StateReviewSucceeded)
		require.NoError(t, err)
		assert.Equal(t, authsignal.StateReviewSucceeded, a.State)
	})

	t.Run("users", func(t *testing.T) {
		_, err := c.Track(ctx, "carol", "transfer", authsignal.TrackRequest{})
		require.NoError(t, err)
		u, err := c.UpdateUser(ctx, "carol", authsignal.UpdateUserRequest{Email: authsignal.String("carol@example.com")})
		require.NoError(t, err)
		assert.Equal(t, "carol@example.com", u.Email)
		u, err = c.GetUser(ctx, "carol")
		require.NoError(t, err)
		assert.Equal(t, "carol@example.com", u.Email)
		require.NoError(t, c.DeleteUser(ctx, "carol"))
	})

	t.Run("a wrong key is an APIError 401 with the documented description", func(t *testing.T) {
		bad := authsignal.NewClient("wrong", authsignal.WithBaseURL(emu.APIURL()))
		_, err := bad.Track(ctx, "alice", "transfer", authsignal.TrackRequest{})
		var apiErr *authsignal.APIError
		require.True(t, errors.As(err, &apiErr), "%v", err)
		assert.Equal(t, http.StatusUnauthorized, apiErr.StatusCode)
		assert.Equal(t, "unauthorized", apiErr.Code)
		assert.Contains(t, apiErr.Description, "Check that your API key and region base URL are correctly configured.")
		assert.NotContains(t, err.Error(), "wrong")
	})

	t.Run("faults", func(t *testing.T) {
		emu.SetFault(emulator.Fault{Status: http.StatusServiceUnavailable, Times: 1})
		_, err := c.Track(ctx, "alice", "transfer", authsignal.TrackRequest{})
		var apiErr *authsignal.APIError
		require.True(t, errors.As(err, &apiErr))
		assert.Equal(t, http.StatusServiceUnavailable, apiErr.StatusCode)

		emu.SetFault(emulator.Fault{Malformed: true, Times: 1})
		_, err = c.Track(ctx, "alice", "transfer", authsignal.TrackRequest{})
		assert.ErrorIs(t, err, authsignal.ErrMalformedResponse)

		emu.SetFault(emulator.Fault{Latency: time.Second, Times: 1})
		short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		defer cancel()
		_, err = c.Track(short, "alice", "transfer", authsignal.TrackRequest{})
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		emu.ClearFaults()
	})
}

func TestTokensExpireAfterTenMinutes(t *testing.T) {
	ctx := context.Background()
	var now atomic.Int64 // the emulator's clock, moved by the test
	now.Store(time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC).UnixNano())
	clock := func() time.Time { return time.Unix(0, now.Load()).UTC() }
	emu, c := newEmulator(t, clock)
	resp, err := c.Track(ctx, "alice", "transfer", authsignal.TrackRequest{Custom: map[string]any{"amount": 5000}, RedirectURL: "https://app.example/cb"})
	require.NoError(t, err)
	back, err := emu.CompleteChallenge(ctx, resp.URL)
	require.NoError(t, err)
	token := back.Query().Get("token")
	now.Add(int64(10*time.Minute - time.Second))
	v, err := c.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: "alice", Action: "transfer"})
	require.NoError(t, err)
	assert.True(t, v.IsValid)
	now.Add(int64(time.Second))
	v, err = c.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: "alice", Action: "transfer"})
	require.NoError(t, err)
	assert.False(t, v.IsValid, "expired at exactly 10 minutes")
}
