// Package require is assert that stops the test: each check calls
// t.FailNow when it fails.
package require

import (
	"testing"

	"github.com/stepupkit/stepup/stepuptest/internal/assert"
)

// Equal is assert.Equal, stopping the test when it fails.
func Equal(t testing.TB, expected, actual any, msgAndArgs ...any) {
	t.Helper()
	if !assert.Equal(t, expected, actual, msgAndArgs...) {
		t.FailNow()
	}
}

// NotEqual is assert.NotEqual, stopping the test when it fails.
func NotEqual(t testing.TB, expected, actual any, msgAndArgs ...any) {
	t.Helper()
	if !assert.NotEqual(t, expected, actual, msgAndArgs...) {
		t.FailNow()
	}
}

// Empty is assert.Empty, stopping the test when it fails.
func Empty(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if !assert.Empty(t, v, msgAndArgs...) {
		t.FailNow()
	}
}

// NotEmpty is assert.NotEmpty, stopping the test when it fails.
func NotEmpty(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if !assert.NotEmpty(t, v, msgAndArgs...) {
		t.FailNow()
	}
}

// Len is assert.Len, stopping the test when it fails.
func Len(t testing.TB, v any, n int, msgAndArgs ...any) {
	t.Helper()
	if !assert.Len(t, v, n, msgAndArgs...) {
		t.FailNow()
	}
}

// Contains is assert.Contains, stopping the test when it fails.
func Contains(t testing.TB, s, elem any, msgAndArgs ...any) {
	t.Helper()
	if !assert.Contains(t, s, elem, msgAndArgs...) {
		t.FailNow()
	}
}

// NotContains is assert.NotContains, stopping the test when it fails.
func NotContains(t testing.TB, s, elem any, msgAndArgs ...any) {
	t.Helper()
	if !assert.NotContains(t, s, elem, msgAndArgs...) {
		t.FailNow()
	}
}

// True is assert.True, stopping the test when it fails.
func True(t testing.TB, v bool, msgAndArgs ...any) {
	t.Helper()
	if !assert.True(t, v, msgAndArgs...) {
		t.FailNow()
	}
}

// False is assert.False, stopping the test when it fails.
func False(t testing.TB, v bool, msgAndArgs ...any) {
	t.Helper()
	if !assert.False(t, v, msgAndArgs...) {
		t.FailNow()
	}
}

// NoError is assert.NoError, stopping the test when it fails.
func NoError(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	if !assert.NoError(t, err, msgAndArgs...) {
		t.FailNow()
	}
}

// Error is assert.Error, stopping the test when it fails.
func Error(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	if !assert.Error(t, err, msgAndArgs...) {
		t.FailNow()
	}
}

// ErrorIs is assert.ErrorIs, stopping the test when it fails.
func ErrorIs(t testing.TB, err, target error, msgAndArgs ...any) {
	t.Helper()
	if !assert.ErrorIs(t, err, target, msgAndArgs...) {
		t.FailNow()
	}
}

// NotNil is assert.NotNil, stopping the test when it fails.
func NotNil(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if !assert.NotNil(t, v, msgAndArgs...) {
		t.FailNow()
	}
}

// Fail is assert.Fail, stopping the test when it fails.
func Fail(t testing.TB, failure string, msgAndArgs ...any) {
	t.Helper()
	if !assert.Fail(t, failure, msgAndArgs...) {
		t.FailNow()
	}
}

// Failf is assert.Failf, stopping the test when it fails.
func Failf(t testing.TB, failure, format string, args ...any) {
	t.Helper()
	if !assert.Failf(t, failure, format, args...) {
		t.FailNow()
	}
}

// Negative is assert.Negative, stopping the test when it fails.
func Negative[N assert.Number](t testing.TB, n N, msgAndArgs ...any) {
	t.Helper()
	if !assert.Negative[N](t, n, msgAndArgs...) {
		t.FailNow()
	}
}

// Positive is assert.Positive, stopping the test when it fails.
func Positive[N assert.Number](t testing.TB, n N, msgAndArgs ...any) {
	t.Helper()
	if !assert.Positive[N](t, n, msgAndArgs...) {
		t.FailNow()
	}
}

// GreaterOrEqual is assert.GreaterOrEqual, stopping the test when it fails.
func GreaterOrEqual[N assert.Number](t testing.TB, a, b N, msgAndArgs ...any) {
	t.Helper()
	if !assert.GreaterOrEqual[N](t, a, b, msgAndArgs...) {
		t.FailNow()
	}
}

// Less is assert.Less, stopping the test when it fails.
func Less[N assert.Number](t testing.TB, a, b N, msgAndArgs ...any) {
	t.Helper()
	if !assert.Less[N](t, a, b, msgAndArgs...) {
		t.FailNow()
	}
}
