package authsignal

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const testKey = "sk_test_SUPERSECRET_0123456789"

// seen is one request as the test server received it.
type seen struct {
	Method, RequestURI, Auth, ContentType, Accept, UserAgent, Version string
	Body                                                              string
}

// testServer answers every request with handler and records what it saw.
type testServer struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []seen
}

func newTestServer(t *testing.T, handler http.HandlerFunc) *testServer {
	t.Helper()
	ts := &testServer{}
	ts.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		ts.mu.Lock()
		ts.reqs = append(ts.reqs, seen{
			Method: r.Method, RequestURI: r.RequestURI, Auth: r.Header.Get("Authorization"),
			ContentType: r.Header.Get("Content-Type"), Accept: r.Header.Get("Accept"),
			UserAgent: r.Header.Get("User-Agent"), Version: r.Header.Get("X-Authsignal-Version"), Body: string(b),
		})
		ts.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) requests() []seen {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return append([]seen(nil), ts.reqs...)
}

// newTestClient returns a client of ts with the test key and no back-off.
func newTestClient(ts *testServer, opts ...Option) *Client {
	opts = append([]Option{WithBaseURL(ts.URL + "/v1")}, opts...)
	c := NewClient(testKey, opts...)
	c.backoff = func(int) time.Duration { return 0 }
	return c
}

func respond(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}
}

func TestClientSendsDocumentedRequests(t *testing.T) {
	tests := []struct {
		name       string
		call       func(context.Context, *Client) error
		expectURI  string
		expectVerb string
		expectBody string // "" means no body
	}{
		{
			name: "track without attributes sends {}",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Track(ctx, "u1", "transfer", TrackRequest{})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/u1/actions/transfer", expectBody: `{}`,
		},
		{
			name: "track sends every attribute under its documented name",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Track(ctx, "u1", "transfer", TrackRequest{
					RedirectURL: "https://app.example/cb", RedirectToSettings: true, Email: "a@b.c",
					PhoneNumber: "+6421", Username: "ann", IPAddress: "192.0.2.1", UserAgent: "UA",
					DeviceID: "dev", Scope: "add:authenticators", Custom: map[string]any{"amount": 5000},
					IdempotencyKey: "idem", ChallengeID: "ch", Locale: "en",
				})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/u1/actions/transfer",
			expectBody: `{"redirectUrl":"https://app.example/cb","redirectToSettings":true,"email":"a@b.c",
				"phoneNumber":"+6421","username":"ann","ipAddress":"192.0.2.1","userAgent":"UA","deviceId":"dev",
				"scope":"add:authenticators","custom":{"amount":5000},"idempotencyKey":"idem","challengeId":"ch","locale":"en"}`,
		},
		{
			name: "track escapes a user id with a slash and a space",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Track(ctx, "a/b c?d#e", "sign-in_2", TrackRequest{})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/a%2Fb%20c%3Fd%23e/actions/sign-in_2", expectBody: `{}`,
		},
		{
			name: "track escapes a unicode user id",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Track(ctx, "jürgen", "transfer", TrackRequest{})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/j%C3%BCrgen/actions/transfer", expectBody: `{}`,
		},
		{
			name: "validate",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Validate(ctx, ValidateRequest{Token: "tok", UserID: "u1", Action: "transfer"})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/validate",
			expectBody: `{"token":"tok","userId":"u1","action":"transfer"}`,
		},
		{
			name: "validate with the token only",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.Validate(ctx, ValidateRequest{Token: "tok"})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/validate", expectBody: `{"token":"tok"}`,
		},
		{
			name: "get action escapes every segment",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetAction(ctx, "u/1", "transfer", "k/ é")
				return err
			},
			expectVerb: http.MethodGet, expectURI: "/v1/users/u%2F1/actions/transfer/k%2F%20%C3%A9",
		},
		{
			name: "update action sends the state",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateAction(ctx, "u1", "transfer", "idem", StateReviewSucceeded)
				return err
			},
			expectVerb: http.MethodPatch, expectURI: "/v1/users/u1/actions/transfer/idem",
			expectBody: `{"state":"REVIEW_SUCCEEDED"}`,
		},
		{
			name: "get user",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.GetUser(ctx, "u 1")
				return err
			},
			expectVerb: http.MethodGet, expectURI: "/v1/users/u%201",
		},
		{
			name: "update user without attributes sends {}",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateUser(ctx, "u1", UpdateUserRequest{})
				return err
			},
			expectVerb: http.MethodPatch, expectURI: "/v1/users/u1", expectBody: `{}`,
		},
		{
			name: "update user sends its attributes under their documented names",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateUser(ctx, "u1", UpdateUserRequest{
					Email: String("a@b.c"), EmailVerified: Bool(true), PhoneNumber: String("+6421"),
					PhoneNumberVerified: Bool(false), Username: String("ann"), DisplayName: String("Ann"),
					Locale: String("en"), DefaultVerificationMethod: String("SMS"), Custom: map[string]any{"tier": "gold"},
				})
				return err
			},
			expectVerb: http.MethodPatch, expectURI: "/v1/users/u1",
			expectBody: `{"email":"a@b.c","emailVerified":true,"phoneNumber":"+6421","phoneNumberVerified":false,` +
				`"username":"ann","displayName":"Ann","locale":"en","defaultVerificationMethod":"SMS","custom":{"tier":"gold"}}`,
		},
		{
			name: "update user clears a field with an empty string and leaves nil ones out",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.UpdateUser(ctx, "u1", UpdateUserRequest{DisplayName: String(""), EmailVerified: Bool(false)})
				return err
			},
			expectVerb: http.MethodPatch, expectURI: "/v1/users/u1",
			expectBody: `{"displayName":"","emailVerified":false}`,
		},
		{
			name: "track sends customDomain and crypto",
			call: func(ctx context.Context, c *Client) error {
				amount := 0.5
				_, err := c.Track(ctx, "u1", "withdraw", TrackRequest{
					CustomDomain: "auth.example.com", Crypto: &Crypto{Asset: "BTC", AssetAmount: &amount},
				})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/u1/actions/withdraw",
			expectBody: `{"customDomain":"auth.example.com","crypto":{"asset":"BTC","assetAmount":0.5}}`,
		},
		{
			name:       "delete user and actions",
			call:       func(ctx context.Context, c *Client) error { return c.DeleteUserAndActions(ctx, "u/1") },
			expectVerb: http.MethodDelete, expectURI: "/v1/users/u%2F1?actions=true",
		},
		{
			name: "enroll verified authenticator",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.EnrollVerifiedAuthenticator(ctx, "u1", EnrollVerifiedAuthenticatorRequest{
					VerificationMethod: "SMS", PhoneNumber: "+64270000000", IsDefault: true})
				return err
			},
			expectVerb: http.MethodPost, expectURI: "/v1/users/u1/authenticators",
			expectBody: `{"verificationMethod":"SMS","phoneNumber":"+64270000000","isDefault":true}`,
		},
		{
			name:       "delete authenticator",
			call:       func(ctx context.Context, c *Client) error { return c.DeleteAuthenticator(ctx, "u1", "a/1") },
			expectVerb: http.MethodDelete, expectURI: "/v1/users/u1/authenticators/a%2F1",
		},
		{
			name: "query users sends the filters given",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.QueryUsers(ctx, QueryUsersRequest{Email: "a+b@c.d", Limit: 10, LastEvaluatedUserID: "u 9"})
				return err
			},
			expectVerb: http.MethodGet, expectURI: "/v1/users?email=a%2Bb%40c.d&lastEvaluatedUserId=u+9&limit=10",
		},
		{
			name: "query users without filters",
			call: func(ctx context.Context, c *Client) error {
				_, err := c.QueryUsers(ctx, QueryUsersRequest{})
				return err
			},
			expectVerb: http.MethodGet, expectURI: "/v1/users",
		},
		{
			name:       "delete user",
			call:       func(ctx context.Context, c *Client) error { return c.DeleteUser(ctx, "u1") },
			expectVerb: http.MethodDelete, expectURI: "/v1/users/u1",
		},
	}
	wantAuth := "Basic " + base64.StdEncoding.EncodeToString([]byte(testKey+":"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, respond(http.StatusOK, `{"state":"ALLOW","isValid":true}`))

			require.NoError(t, tt.call(t.Context(), newTestClient(ts)))

			reqs := ts.requests()
			require.Len(t, reqs, 1)
			got := reqs[0]
			assert.Equal(t, tt.expectVerb, got.Method)
			assert.Equal(t, tt.expectURI, got.RequestURI)
			assert.Equal(t, wantAuth, got.Auth, "Basic auth, secret key as user name, empty password")
			assert.Equal(t, "application/json", got.Accept)
			assert.True(t, strings.HasPrefix(got.UserAgent, "stepup-authsignal-go/"), got.UserAgent)
			assert.Equal(t, clientVersion, got.Version, "X-Authsignal-Version, as the official SDKs send")
			if tt.expectBody == "" {
				assert.Empty(t, got.Body)
				assert.Empty(t, got.ContentType)
			} else {
				assert.JSONEq(t, tt.expectBody, got.Body)
				assert.Equal(t, "application/json", got.ContentType)
			}
		})
	}
}

func TestClientDecodesResponses(t *testing.T) {
	t.Run("track", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `{"state":"CHALLENGE_REQUIRED","idempotencyKey":"idem",
			"url":"https://ui.example/?token=x","token":"tok","isEnrolled":true,
			"enrolledVerificationMethods":["PASSKEY"],"allowedVerificationMethods":["PASSKEY","SMS"],
			"defaultVerificationMethod":"PASSKEY","ruleIds":["r1"],"somethingNew":1}`))

		got, err := newTestClient(ts).Track(t.Context(), "u1", "transfer", TrackRequest{})

		require.NoError(t, err)
		assert.Equal(t, &TrackResponse{
			State: StateChallengeRequired, IdempotencyKey: "idem", URL: "https://ui.example/?token=x",
			Token: "tok", IsEnrolled: true, EnrolledVerificationMethods: []string{"PASSKEY"},
			AllowedVerificationMethods: []string{"PASSKEY", "SMS"}, DefaultVerificationMethod: "PASSKEY",
			RuleIDs: []string{"r1"},
		}, got)
	})

	validate := []struct {
		name   string
		given  string
		expect ValidateResponse
	}{
		{
			name:  "action",
			given: `{"isValid":true,"state":"CHALLENGE_SUCCEEDED","stateUpdatedAt":"2025-01-01T00:00:00Z","userId":"u1","action":"transfer","idempotencyKey":"idem","verificationMethod":"SMS"}`,
			expect: ValidateResponse{IsValid: true, State: StateChallengeSucceeded, StateUpdatedAt: "2025-01-01T00:00:00Z",
				UserID: "u1", Action: "transfer", IdempotencyKey: "idem", VerificationMethod: "SMS"},
		},
		{
			name:   "deprecated actionCode",
			given:  `{"isValid":true,"state":"CHALLENGE_SUCCEEDED","userId":"u1","actionCode":"transfer"}`,
			expect: ValidateResponse{IsValid: true, State: StateChallengeSucceeded, UserID: "u1", Action: "transfer"},
		},
		{
			name:   "both spellings, action wins",
			given:  `{"isValid":true,"action":"transfer","actionCode":"other"}`,
			expect: ValidateResponse{IsValid: true, Action: "transfer"},
		},
		{
			name:   "not valid, with the reason",
			given:  `{"isValid":false,"state":"CHALLENGE_REQUIRED","error":"User is invalid."}`,
			expect: ValidateResponse{State: StateChallengeRequired, Error: "User is invalid."},
		},
		{
			name:   "unknown state surfaced verbatim",
			given:  `{"isValid":true,"state":"SOMETHING_NEW"}`,
			expect: ValidateResponse{IsValid: true, State: "SOMETHING_NEW"},
		},
		{
			name:   "REVIEW alias",
			given:  `{"isValid":false,"state":"REVIEW"}`,
			expect: ValidateResponse{State: StateReviewRequired},
		},
	}
	for _, tt := range validate {
		t.Run("validate/"+tt.name, func(t *testing.T) {
			ts := newTestServer(t, respond(http.StatusOK, tt.given))

			got, err := newTestClient(ts).Validate(t.Context(), ValidateRequest{Token: "tok"})

			require.NoError(t, err)
			assert.Equal(t, tt.expect, *got)
			assert.Equal(t, tt.expect.State.Known(), got.State.Known())
		})
	}

	t.Run("action", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `{"state":"REVIEW_SUCCEEDED","stateUpdatedAt":"s","createdAt":"c",
			"verificationMethod":"SMS","ruleIds":["r1"],"rules":[{"name":"big"}],"output":{"k":"v"}}`))

		got, err := newTestClient(ts).GetAction(t.Context(), "u1", "transfer", "idem")

		require.NoError(t, err)
		assert.Equal(t, &Action{State: StateReviewSucceeded, StateUpdatedAt: "s", CreatedAt: "c", VerificationMethod: "SMS",
			RuleIDs: []string{"r1"}, Rules: []map[string]any{{"name": "big"}}, Output: map[string]any{"k": "v"}}, got)
	})

	t.Run("user", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `{"isEnrolled":true,"email":"a@b.c","enrolledVerificationMethods":["SMS"]}`))

		got, err := newTestClient(ts).GetUser(t.Context(), "u1")

		require.NoError(t, err)
		assert.Equal(t, &User{IsEnrolled: true, Email: "a@b.c", EnrolledVerificationMethods: []string{"SMS"}}, got)
	})

	t.Run("delete ignores the body", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusOK, `not even json`))

		assert.NoError(t, newTestClient(ts).DeleteUser(t.Context(), "u1"))
	})
}

func TestClientReturnsAPIErrors(t *testing.T) {
	const unauthorized = "The request is unauthorized. Check that your API key and region base URL are correctly configured."
	tests := []struct {
		name        string
		givenStatus int
		givenBody   string
		expect      APIError
	}{
		{
			name: "unauthorized", givenStatus: 401,
			givenBody: `{"error":"unauthorized","errorCode":"unauthorized","errorDescription":"` + unauthorized + `"}`,
			expect:    APIError{StatusCode: 401, Code: "unauthorized", Description: unauthorized},
		},
		{
			name: "invalid_request", givenStatus: 400,
			givenBody: `{"error":"invalid_request","errorCode":"invalid_request","errorDescription":"The action code is invalid."}`,
			expect:    APIError{StatusCode: 400, Code: "invalid_request", Description: "The action code is invalid."},
		},
		{
			name: "invalid_credential", givenStatus: 400,
			givenBody: `{"errorCode":"invalid_credential","errorDescription":"bad credential"}`,
			expect:    APIError{StatusCode: 400, Code: "invalid_credential", Description: "bad credential"},
		},
		{
			name: "invalid_configuration", givenStatus: 400,
			givenBody: `{"errorCode":"invalid_configuration","errorDescription":"no authenticator configured"}`,
			expect:    APIError{StatusCode: 400, Code: "invalid_configuration", Description: "no authenticator configured"},
		},
		{
			name: "too_many_requests", givenStatus: 429,
			givenBody: `{"errorCode":"too_many_requests","errorDescription":"slow down"}`,
			expect:    APIError{StatusCode: 429, Code: "too_many_requests", Description: "slow down"},
		},
		{
			name: "deprecated error field only", givenStatus: 400,
			givenBody: `{"error":"invalid_request","errorDescription":"d"}`,
			expect:    APIError{StatusCode: 400, Code: "invalid_request", Description: "d"},
		},
		{
			name: "errorCode wins over error", givenStatus: 400,
			givenBody: `{"error":"old","errorCode":"invalid_request"}`,
			expect:    APIError{StatusCode: 400, Code: "invalid_request"},
		},
		{
			name: "fields of another type are ignored", givenStatus: 400,
			givenBody: `{"error":{"nested":true},"errorCode":7,"errorDescription":"d"}`,
			expect:    APIError{StatusCode: 400, Description: "d"},
		},
		{
			name: "HTML body", givenStatus: 502,
			givenBody: `<html><body>Bad gateway</body></html>`,
			expect:    APIError{StatusCode: 502, Description: "response is not a JSON error object"},
		},
		{
			name: "empty body", givenStatus: 404,
			expect: APIError{StatusCode: 404, Description: "response is not a JSON error object"},
		},
		{
			name: "JSON that is not an object", givenStatus: 400,
			givenBody: `["unauthorized"]`,
			expect:    APIError{StatusCode: 400, Description: "response is not a JSON error object"},
		},
		{
			name: "huge body is not echoed", givenStatus: 500,
			givenBody: `{"errorCode":"x","errorDescription":"` + strings.Repeat("A", 2<<20) + `"}`,
			expect:    APIError{StatusCode: 500, Description: "response is not a JSON error object"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, respond(tt.givenStatus, tt.givenBody))

			_, err := newTestClient(ts).Track(t.Context(), "u1", "transfer", TrackRequest{})

			var apiErr *APIError
			require.ErrorAs(t, err, &apiErr)
			assert.Equal(t, tt.expect, *apiErr)
			assert.NotContains(t, err.Error(), testKey)
			assert.Less(t, len(err.Error()), 1024)
			assert.Len(t, ts.requests(), 1, "a POST is never retried after an answer")
		})
	}
}

func TestAPIErrorMessage(t *testing.T) {
	tests := []struct {
		name   string
		given  APIError
		expect string
	}{
		{
			name:   "code and description",
			given:  APIError{StatusCode: 401, Code: "unauthorized", Description: "The request is unauthorized."},
			expect: "authsignal: API error: status 401 unauthorized: The request is unauthorized.",
		},
		{
			name:   "status only",
			given:  APIError{StatusCode: 503},
			expect: "authsignal: API error: status 503",
		},
		{
			name:   "control characters cannot forge log lines",
			given:  APIError{StatusCode: 400, Code: "a\nb", Description: "line\r\nINFO forged\x00"},
			expect: "authsignal: API error: status 400 a\uFFFDb: line\uFFFD\uFFFDINFO forged\uFFFD",
		},
		{
			name:   "long description truncated",
			given:  APIError{StatusCode: 400, Description: strings.Repeat("é", 300)},
			expect: "authsignal: API error: status 400: " + strings.Repeat("é", 256) + "…",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.expect, tt.given.Error())
		})
	}
}

func TestClientRejectsMalformedSuccess(t *testing.T) {
	tests := []struct {
		name  string
		given string
	}{
		{name: "not JSON", given: `<html>ok</html>`},
		{name: "empty", given: ``},
		{name: "null", given: `null`},
		{name: "array", given: `[{"state":"ALLOW"}]`},
		{name: "truncated", given: `{"state":"ALL`},
		{name: "trailing garbage", given: `{"state":"ALLOW"} {"state":"BLOCK"}`},
		{name: "wrong type", given: `{"state":1}`},
		{name: "larger than 1 MiB", given: `{"state":"ALLOW","pad":"` + strings.Repeat("x", 1<<20) + `"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, respond(http.StatusOK, tt.given))

			got, err := newTestClient(ts).Track(t.Context(), "u1", "transfer", TrackRequest{})

			require.ErrorIs(t, err, ErrMalformedResponse)
			assert.Nil(t, got)
			assert.Contains(t, err.Error(), "track")
			assert.Less(t, len(err.Error()), 512)
		})
	}
}

func TestClientRejectsBadArgumentsBeforeAnyRequest(t *testing.T) {
	bg := context.Background()
	tests := []struct {
		name   string
		opts   []Option
		key    string
		call   func(*Client) error
		expect error
	}{
		{name: "empty user id", call: func(c *Client) error { _, err := c.Track(bg, "", "transfer", TrackRequest{}); return err }, expect: ErrInvalidUserID},
		{name: "dot user id", call: func(c *Client) error { _, err := c.GetUser(bg, "."); return err }, expect: ErrInvalidUserID},
		{name: "dot-dot user id", call: func(c *Client) error { return c.DeleteUser(bg, "..") }, expect: ErrInvalidUserID},
		{name: "empty user id on update", call: func(c *Client) error { _, err := c.UpdateUser(bg, "", UpdateUserRequest{}); return err }, expect: ErrInvalidUserID},
		{name: "empty user id on action", call: func(c *Client) error { _, err := c.GetAction(bg, "", "a", "k"); return err }, expect: ErrInvalidUserID},
		{name: "empty action code", call: func(c *Client) error { _, err := c.Track(bg, "u1", "", TrackRequest{}); return err }, expect: ErrInvalidActionCode},
		{name: "action code with a slash", call: func(c *Client) error { _, err := c.Track(bg, "u1", "a/b", TrackRequest{}); return err }, expect: ErrInvalidActionCode},
		{name: "action code with a space", call: func(c *Client) error { _, err := c.Track(bg, "u1", "sign in", TrackRequest{}); return err }, expect: ErrInvalidActionCode},
		{name: "action code of 65 characters", call: func(c *Client) error {
			_, err := c.Track(bg, "u1", strings.Repeat("a", 65), TrackRequest{})
			return err
		}, expect: ErrInvalidActionCode},
		{name: "unicode action code", call: func(c *Client) error { _, err := c.GetAction(bg, "u1", "transfér", "k"); return err }, expect: ErrInvalidActionCode},
		{name: "bad action code on update", call: func(c *Client) error { _, err := c.UpdateAction(bg, "u1", "..", "k", StateAllow); return err }, expect: ErrInvalidActionCode},
		{name: "bad action code on validate", call: func(c *Client) error {
			_, err := c.Validate(bg, ValidateRequest{Token: "t", Action: "a b"})
			return err
		}, expect: ErrInvalidActionCode},
		{name: "empty idempotency key", call: func(c *Client) error { _, err := c.GetAction(bg, "u1", "a", ""); return err }, expect: ErrInvalidIdempotencyKey},
		{name: "dot-dot idempotency key", call: func(c *Client) error { _, err := c.UpdateAction(bg, "u1", "a", "..", StateAllow); return err }, expect: ErrInvalidIdempotencyKey},
		{name: "empty state", call: func(c *Client) error { _, err := c.UpdateAction(bg, "u1", "a", "k", ""); return err }, expect: ErrMissingState},
		{name: "empty token", call: func(c *Client) error { _, err := c.Validate(bg, ValidateRequest{UserID: "u1"}); return err }, expect: ErrMissingToken},
		{name: "missing secret key", key: "-", call: func(c *Client) error { _, err := c.GetUser(bg, "u1"); return err }, expect: ErrMissingSecretKey},
		{name: "missing secret key on validate", key: "-", call: func(c *Client) error {
			_, err := c.Validate(bg, ValidateRequest{Token: "t"})
			return err
		}, expect: ErrMissingSecretKey},
		{name: "unknown region", opts: []Option{WithRegion("mars")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
		{name: "base URL without scheme", opts: []Option{WithBaseURL("api.authsignal.com/v1")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
		{name: "base URL with another scheme", opts: []Option{WithBaseURL("ftp://h/v1")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
		{name: "base URL with user info", opts: []Option{WithBaseURL("https://sk:x@h/v1")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
		{name: "base URL with a query", opts: []Option{WithBaseURL("https://h/v1?x=1")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
		{name: "base URL that does not parse", opts: []Option{WithBaseURL("http://[::1")}, call: func(c *Client) error { return c.DeleteUser(bg, "u1") }, expect: ErrInvalidBaseURL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var hits atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hits.Add(1) }))
			t.Cleanup(srv.Close)
			key := testKey
			if tt.key == "-" {
				key = ""
			}
			c := NewClient(key, append([]Option{WithBaseURL(srv.URL + "/v1")}, tt.opts...)...)

			err := tt.call(c)

			require.ErrorIs(t, err, tt.expect)
			assert.True(t, strings.HasPrefix(err.Error(), "authsignal: "), err.Error())
			assert.Zero(t, hits.Load(), "no request may be sent")
		})
	}
}

func TestNewClientDefaults(t *testing.T) {
	c := NewClient(testKey)

	assert.Equal(t, 10*time.Second, c.timeout)
	assert.Equal(t, 2, c.retries)
	assert.Equal(t, "https://api.authsignal.com/v1", c.baseURL)
	assert.NoError(t, c.err)
}

func TestOptions(t *testing.T) {
	custom := &http.Client{}
	tests := []struct {
		name   string
		given  []Option
		expect func(*testing.T, *Client)
	}{
		{name: "region AU", given: []Option{WithRegion(RegionAU)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "https://au.api.authsignal.com/v1", c.baseURL)
		}},
		{name: "region EU", given: []Option{WithRegion(RegionEU)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "https://eu.api.authsignal.com/v1", c.baseURL)
		}},
		{name: "region CA", given: []Option{WithRegion(RegionCA)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "https://ca.api.authsignal.com/v1", c.baseURL)
		}},
		{name: "region US", given: []Option{WithRegion(RegionEU), WithRegion(RegionUS)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "https://api.authsignal.com/v1", c.baseURL)
		}},
		{name: "base URL loses its trailing slash", given: []Option{WithBaseURL("http://127.0.0.1:8787/v1/")}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "http://127.0.0.1:8787/v1", c.baseURL)
		}},
		{name: "last of base URL and region wins", given: []Option{WithBaseURL("::bad"), WithRegion(RegionEU)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, "https://eu.api.authsignal.com/v1", c.baseURL)
			assert.NoError(t, c.err)
		}},
		{name: "timeout", given: []Option{WithTimeout(time.Second)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, time.Second, c.timeout)
		}},
		{name: "non-positive timeout keeps the default", given: []Option{WithTimeout(0)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, DefaultTimeout, c.timeout)
		}},
		{name: "retries", given: []Option{WithRetries(5)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, 5, c.retries)
		}},
		{name: "negative retries disable them", given: []Option{WithRetries(-1)}, expect: func(t *testing.T, c *Client) {
			assert.Equal(t, 0, c.retries)
		}},
		{name: "HTTP client", given: []Option{WithHTTPClient(custom)}, expect: func(t *testing.T, c *Client) {
			assert.Same(t, custom, c.hc)
		}},
		{name: "nil HTTP client and nil option are ignored", given: []Option{WithHTTPClient(nil), nil}, expect: func(t *testing.T, c *Client) {
			assert.NotNil(t, c.hc)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.expect(t, NewClient(testKey, tt.given...))
		})
	}
}

func TestClientDoesNotFollowRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { elsewhere.Add(1) }))
	t.Cleanup(other.Close)
	ts := newTestServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/steal", http.StatusTemporaryRedirect)
	})

	_, err := newTestClient(ts).Track(t.Context(), "u1", "transfer", TrackRequest{})

	var apiErr *APIError
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, http.StatusTemporaryRedirect, apiErr.StatusCode)
	assert.Zero(t, elsewhere.Load(), "the key must not be sent to the redirect target")
}

// dropConnection answers nothing: it closes the connection.
func dropConnection(w http.ResponseWriter, _ *http.Request) {
	conn, _, err := w.(http.Hijacker).Hijack()
	if err == nil {
		_ = conn.Close()
	}
}

// sequence answers the i-th request with handlers[i], repeating the last.
func sequence(handlers ...http.HandlerFunc) http.HandlerFunc {
	var n atomic.Int32
	return func(w http.ResponseWriter, r *http.Request) {
		i := min(int(n.Add(1))-1, len(handlers)-1)
		handlers[i](w, r)
	}
}

func TestClientRetries(t *testing.T) {
	unavailable := respond(http.StatusServiceUnavailable, `{"errorCode":"unavailable"}`)
	ok := respond(http.StatusOK, `{"state":"ALLOW","isEnrolled":true}`)
	getUser := func(c *Client) error { _, err := c.GetUser(t.Context(), "u1"); return err }
	track := func(c *Client) error { _, err := c.Track(t.Context(), "u1", "transfer", TrackRequest{}); return err }
	tests := []struct {
		name         string
		givenServer  http.HandlerFunc
		givenRetries int // -1: default
		when         func(*Client) error
		expectHits   int
		expectStatus int  // APIError status, 0 for none
		expectTransp bool // ErrTransport
	}{
		{name: "GET 5xx retried twice by default, then the error", givenServer: unavailable, givenRetries: -1, when: getUser, expectHits: 3, expectStatus: 503},
		{name: "GET 5xx retried up to N", givenServer: unavailable, givenRetries: 4, when: getUser, expectHits: 5, expectStatus: 503},
		{name: "GET 5xx then success", givenServer: sequence(unavailable, ok), givenRetries: -1, when: getUser, expectHits: 2},
		{name: "GET 5xx not retried with retries disabled", givenServer: unavailable, givenRetries: 0, when: getUser, expectHits: 1, expectStatus: 503},
		{name: "GET 4xx not retried", givenServer: respond(404, `{}`), givenRetries: -1, when: getUser, expectHits: 1, expectStatus: 404},
		{name: "GET 429 not retried", givenServer: respond(429, `{"errorCode":"too_many_requests"}`), givenRetries: -1, when: getUser, expectHits: 1, expectStatus: 429},
		{name: "GET dropped connection retried", givenServer: sequence(dropConnection, ok), givenRetries: -1, when: getUser, expectHits: 2},
		{name: "GET dropped connections exhaust the retries", givenServer: dropConnection, givenRetries: -1, when: getUser, expectHits: 3, expectTransp: true},
		{name: "POST 5xx not retried", givenServer: unavailable, givenRetries: -1, when: track, expectHits: 1, expectStatus: 503},
		{name: "POST 500 not retried", givenServer: respond(500, ``), givenRetries: -1, when: track, expectHits: 1, expectStatus: 500},
		{name: "POST dropped after sending not retried", givenServer: dropConnection, givenRetries: -1, when: track, expectHits: 1, expectTransp: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, tt.givenServer)
			var opts []Option
			if tt.givenRetries >= 0 {
				opts = append(opts, WithRetries(tt.givenRetries))
			}

			err := tt.when(newTestClient(ts, opts...))

			assert.Len(t, ts.requests(), tt.expectHits)
			switch {
			case tt.expectStatus != 0:
				var apiErr *APIError
				require.ErrorAs(t, err, &apiErr)
				assert.Equal(t, tt.expectStatus, apiErr.StatusCode)
			case tt.expectTransp:
				require.ErrorIs(t, err, ErrTransport)
			default:
				require.NoError(t, err)
			}
		})
	}
}

// scriptedTransport fails the first fails round trips with err, then
// delegates to http.DefaultTransport. It counts round trips.
type scriptedTransport struct {
	fails int32
	err   error
	calls atomic.Int32
}

func (s *scriptedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if s.calls.Add(1) <= s.fails {
		return nil, s.err
	}
	return http.DefaultTransport.RoundTrip(r)
}

func TestClientRetriesPOSTOnlyWhenItWasNotSent(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	tests := []struct {
		name        string
		given       *scriptedTransport
		expectCalls int32
		expectErr   error
	}{
		{name: "connection refused twice, then success", given: &scriptedTransport{fails: 2, err: refused}, expectCalls: 3},
		{name: "connection refused every time", given: &scriptedTransport{fails: 9, err: refused}, expectCalls: 3, expectErr: syscall.ECONNREFUSED},
		{name: "connection reset after sending", given: &scriptedTransport{fails: 1, err: reset}, expectCalls: 1, expectErr: syscall.ECONNRESET},
		{name: "EOF after sending", given: &scriptedTransport{fails: 1, err: io.EOF}, expectCalls: 1, expectErr: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := newTestServer(t, respond(http.StatusOK, `{"state":"ALLOW"}`))
			var delays []int
			c := newTestClient(ts, WithHTTPClient(&http.Client{Transport: tt.given}))
			c.backoff = func(retry int) time.Duration { delays = append(delays, retry); return 0 }

			got, err := c.Track(t.Context(), "u1", "transfer", TrackRequest{})

			assert.Equal(t, tt.expectCalls, tt.given.calls.Load())
			assert.Len(t, delays, int(tt.expectCalls-1))
			if tt.expectErr == nil {
				require.NoError(t, err)
				assert.Equal(t, StateAllow, got.State)
				assert.Equal(t, []int{1, 2}, delays, "back-off is asked for retry 1, then 2")
				return
			}
			require.ErrorIs(t, err, ErrTransport)
			require.ErrorIs(t, err, tt.expectErr)
			assert.NotContains(t, err.Error(), testKey)
		})
	}
}

func TestClientUnreachableHost(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	counting := &scriptedTransport{}
	c := NewClient(testKey, WithBaseURL("http://"+addr+"/v1"), WithHTTPClient(&http.Client{Transport: counting}))
	c.backoff = func(int) time.Duration { return 0 }

	_, err = c.Track(t.Context(), "u1", "transfer", TrackRequest{})

	require.ErrorIs(t, err, ErrTransport)
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	assert.Contains(t, err.Error(), addr)
	assert.Contains(t, err.Error(), "connection refused")
	assert.NotContains(t, err.Error(), testKey)
	assert.Equal(t, int32(3), counting.calls.Load(), "a refused connection is retried even for POST")
}

// slowServer answers only when the client gives up.
func slowServer(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
		w.WriteHeader(http.StatusOK)
	}
}

func TestClientHonoursDeadlines(t *testing.T) {
	t.Run("context deadline", func(t *testing.T) {
		ts := newTestServer(t, slowServer)
		ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
		defer cancel()
		start := time.Now()

		_, err := newTestClient(ts).Track(ctx, "u1", "transfer", TrackRequest{})

		assert.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		require.ErrorIs(t, err, ErrTransport)
		assert.LessOrEqual(t, len(ts.requests()), 1, "a POST that may have been sent is not retried")
	})

	t.Run("WithTimeout bounds a GET, retries included", func(t *testing.T) {
		ts := newTestServer(t, slowServer)
		start := time.Now()

		_, err := newTestClient(ts, WithTimeout(50*time.Millisecond)).GetUser(context.Background(), "u1")

		assert.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, err, context.DeadlineExceeded)
		assert.LessOrEqual(t, len(ts.requests()), 1, "no retry once the deadline has passed")
	})

	t.Run("back-off never sleeps past the deadline", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusServiceUnavailable, `{}`))
		c := newTestClient(ts, WithTimeout(time.Second))
		c.backoff = func(int) time.Duration { return time.Hour }
		start := time.Now()

		_, err := c.GetUser(context.Background(), "u1")

		assert.Less(t, time.Since(start), 500*time.Millisecond)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr, "the last failure is reported")
		assert.Equal(t, 503, apiErr.StatusCode)
		assert.Len(t, ts.requests(), 1)
	})

	t.Run("cancellation during back-off", func(t *testing.T) {
		ts := newTestServer(t, respond(http.StatusServiceUnavailable, `{}`))
		c := newTestClient(ts, WithTimeout(time.Hour))
		ctx, cancel := context.WithCancel(t.Context())
		c.backoff = func(int) time.Duration {
			time.AfterFunc(20*time.Millisecond, cancel)
			return time.Minute
		}
		start := time.Now()

		_, err := c.GetUser(ctx, "u1")

		assert.Less(t, time.Since(start), time.Second)
		require.ErrorIs(t, err, context.Canceled)
		var apiErr *APIError
		require.ErrorAs(t, err, &apiErr, "the last failure is kept")
	})
}

func TestDefaultBackoff(t *testing.T) {
	tests := []struct {
		retry  int
		expect time.Duration // upper bound; the lower bound is half of it
	}{
		{retry: 1, expect: 100 * time.Millisecond},
		{retry: 2, expect: 200 * time.Millisecond},
		{retry: 3, expect: 400 * time.Millisecond},
		{retry: 4, expect: 800 * time.Millisecond},
		{retry: 5, expect: time.Second},
		{retry: 64, expect: time.Second},
		{retry: 1 << 30, expect: time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.retry), func(t *testing.T) {
			for range 100 {
				d := defaultBackoff(tt.retry)
				assert.GreaterOrEqual(t, d, tt.expect/2)
				assert.LessOrEqual(t, d, tt.expect)
			}
		})
	}
}

func TestClientNeverShowsTheSecretKey(t *testing.T) {
	c := NewClient(testKey, WithBaseURL("http://127.0.0.1:8787/v1"))

	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%d", "%x", "%X", "%T"} {
		t.Run(verb, func(t *testing.T) {
			assert.NotContains(t, fmt.Sprintf(verb, c), testKey)
			assert.NotContains(t, fmt.Sprintf(verb, *c), testKey)
			assert.NotContains(t, fmt.Sprintf(verb, []any{c, struct{ C *Client }{c}}), testKey)
		})
	}
	assert.Equal(t, `authsignal.Client{baseURL: "http://127.0.0.1:8787/v1", secretKey: [REDACTED]}`, c.String())
	b, err := json.Marshal(c)
	require.NoError(t, err)
	assert.NotContains(t, string(b), testKey)

	t.Run("errors", func(t *testing.T) {
		ts := newTestServer(t, sequence(
			respond(401, `{"errorCode":"unauthorized"}`),
			respond(200, `nope`),
			dropConnection,
		))
		tc := newTestClient(ts, WithRetries(0))
		for range 3 {
			_, err := tc.Track(t.Context(), "u1", "transfer", TrackRequest{})
			require.Error(t, err)
			assert.NotContains(t, fmt.Sprintf("%+v", err), testKey)
			assert.NotContains(t, fmt.Sprintf("%#v", err), testKey)
		}
	})
}

func TestClientIsSafeForConcurrentUse(t *testing.T) {
	ts := newTestServer(t, respond(http.StatusOK, `{"state":"ALLOW"}`))
	c := newTestClient(ts)
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			_, err := c.Track(t.Context(), "u1", "transfer", TrackRequest{})
			assert.NoError(t, err)
		})
	}
	wg.Wait()
	assert.Len(t, ts.requests(), 16)
}

func TestTransportErrorKeepsTheContextCause(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()

	err := transportError(ctx, "track", errors.New("net/http: request canceled"))

	require.ErrorIs(t, err, ErrTransport)
	require.ErrorIs(t, err, context.Canceled)
}

func TestClientRefusesAnUnencodableRequest(t *testing.T) {
	ts := newTestServer(t, respond(http.StatusOK, `{"state":"ALLOW"}`))

	_, err := newTestClient(ts).Track(t.Context(), "u1", "transfer", TrackRequest{Custom: map[string]any{"f": func() {}}})

	require.Error(t, err)
	assert.True(t, strings.HasPrefix(err.Error(), "authsignal: track: encoding request: "), err.Error())
	assert.Empty(t, ts.requests())
}
