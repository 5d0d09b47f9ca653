package authsignal

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Sentinel errors. Errors returned by this package wrap them, so test with
// errors.Is. An error from the Authsignal API itself is an *APIError.
var (
	// ErrMissingSecretKey is returned by every call of a Client built
	// without a secret key.
	ErrMissingSecretKey = errors.New("authsignal: missing secret key")

	// ErrInvalidBaseURL is returned by every call of a Client whose base
	// URL (WithBaseURL) is not an absolute http or https URL without user
	// info, query or fragment, or whose region (WithRegion) is unknown.
	ErrInvalidBaseURL = errors.New("authsignal: invalid base URL")

	// ErrInvalidActionCode is returned, before any request is sent, for an
	// action code that does not satisfy ValidActionCode.
	ErrInvalidActionCode = errors.New("authsignal: invalid action code")

	// ErrInvalidUserID is returned, before any request is sent, for an
	// empty user id or one that is a dot segment ("." or "..").
	ErrInvalidUserID = errors.New("authsignal: invalid user id")

	// ErrInvalidIdempotencyKey is returned, before any request is sent, for
	// an empty idempotency key or one that is a dot segment.
	ErrInvalidIdempotencyKey = errors.New("authsignal: invalid idempotency key")

	// ErrInvalidAuthenticatorID is returned, before any request is sent,
	// for an empty authenticator id or one that is a dot segment.
	ErrInvalidAuthenticatorID = errors.New("authsignal: invalid authenticator id")

	// ErrMissingVerificationMethod is returned by
	// EnrollVerifiedAuthenticator, before any request is sent, when the
	// verification method is empty.
	ErrMissingVerificationMethod = errors.New("authsignal: missing verification method")

	// ErrMissingToken is returned by Validate, before any request is sent,
	// when the token is empty.
	ErrMissingToken = errors.New("authsignal: missing token")

	// ErrMissingState is returned by UpdateAction, before any request is
	// sent, when the state is empty.
	ErrMissingState = errors.New("authsignal: missing state")

	// ErrTransport wraps a failure to get an HTTP response: dial errors,
	// connection resets, timeouts, a body cut short. The cause stays in the
	// chain, so errors.Is(err, context.DeadlineExceeded) works.
	ErrTransport = errors.New("authsignal: transport failure")

	// ErrMalformedResponse is returned when a 2xx response is not the JSON
	// object the endpoint documents, or is larger than the client reads.
	ErrMalformedResponse = errors.New("authsignal: malformed response")

	// ErrMissingWebhookSecret is returned by VerifyWebhook when the secret
	// is empty: an empty HMAC key would let anyone sign.
	ErrMissingWebhookSecret = errors.New("authsignal: missing webhook secret")

	// ErrInvalidWebhookSignature is returned by VerifyWebhook when the
	// signature header is missing or malformed, its timestamp is outside
	// the tolerance, or no signature in it matches.
	ErrInvalidWebhookSignature = errors.New("authsignal: invalid webhook signature")
)

// APIError is a non-2xx answer from the Authsignal API.
//
// Code is the documented error code ("unauthorized", "invalid_request",
// "invalid_credential", "invalid_configuration", "too_many_requests", …),
// read from "errorCode" or, when absent, from the deprecated "error". It is
// empty when the body was not a JSON error object; Description then says so.
//
// RetryAfter is how long the server asked the caller to wait (its
// Retry-After header, in seconds or as an HTTP date, typically on a 429
// too_many_requests or a 503), capped at MaxRetryAfter; 0 when it sent none
// or one that does not parse. The client never waits on its own: a 429 is
// not retried.
type APIError struct {
	StatusCode  int
	Code        string
	Description string
	RetryAfter  time.Duration
}

// MaxRetryAfter caps APIError.RetryAfter, so that a hostile or broken
// server cannot make a caller that honours it wait for days.
const MaxRetryAfter = time.Hour

// parseRetryAfter reads a Retry-After value (RFC 9110: delay-seconds or an
// HTTP date) as a duration from now in [0, MaxRetryAfter]; 0 when absent or
// malformed.
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0
			}
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			return MaxRetryAfter // all digits: only too large fails
		}
		return time.Duration(n) * time.Second
	}
	t, err := http.ParseTime(v)
	if err != nil {
		return 0
	}
	return min(max(t.Sub(now), 0), MaxRetryAfter)
}

// Error describes the failure. It never includes the secret key, and it
// truncates and sanitises what the server sent so that it is safe to log.
func (e *APIError) Error() string {
	var b strings.Builder
	b.WriteString("authsignal: API error: status ")
	b.WriteString(strconv.Itoa(e.StatusCode))
	if e.Code != "" {
		b.WriteByte(' ')
		b.WriteString(sanitize(e.Code, 64))
	}
	if e.Description != "" {
		b.WriteString(": ")
		b.WriteString(sanitize(e.Description, 256))
	}
	if e.RetryAfter > 0 {
		b.WriteString(" (retry after ")
		b.WriteString(e.RetryAfter.String())
		b.WriteByte(')')
	}
	return b.String()
}

// sanitize makes s safe for one log line: at most max runes, control and
// other non-printable runes (including invalid UTF-8) replaced by U+FFFD.
func sanitize(s string, max int) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("…")
			break
		}
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = utf8.RuneError
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
