package stepup_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

func TestErrorNamesThePackageOnceAndKeepsItsSentinels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		given  *stepup.Error
		expect string
		is     []error
	}{
		{
			name:   "sentinel with a cause",
			given:  &stepup.Error{Status: 403, Code: "step_up_failed", Err: fmt.Errorf("%w: validate: no", stepup.ErrStepUpFailed)},
			expect: "stepup: 403 step_up_failed: step-up verification failed: validate: no",
			is:     []error{stepup.ErrStepUpFailed},
		},
		{
			name:   "chain of sentinels",
			given:  &stepup.Error{Status: 503, Code: "busy", Err: fmt.Errorf("%w: store: %w", stepup.ErrInternal, stepup.ErrStoreFull)},
			expect: "stepup: 503 busy: internal error: store: store is full",
			is:     []error{stepup.ErrInternal, stepup.ErrStoreFull},
		},
		{
			name:   "no cause",
			given:  &stepup.Error{Status: 401, Code: "login_required"},
			expect: "stepup: 401 login_required",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.expect, tc.given.Error())
			assert.Equal(t, 1, strings.Count(tc.given.Error(), "stepup: "))
			for _, target := range tc.is {
				assert.True(t, errors.Is(tc.given, target), "errors.Is %v", target)
			}
		})
	}
}

func TestErrorHandlerReceivesTheRefusal(t *testing.T) {
	var got error
	env := stepuptest.NewEnv(t, serveMux, stepuptest.Options{Config: func(c *stepup.Config) {
		c.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
			got = err
			w.WriteHeader(http.StatusTeapot)
		}
	}})
	b := env.NewBrowser()
	b.Login("alice")
	assert.Equal(t, http.StatusTeapot, b.Do(http.MethodPost, "/block", stepuptest.Form, "x=1", nil).StatusCode)
	var se *stepup.Error
	require.ErrorAs(t, got, &se)
	assert.Equal(t, http.StatusForbidden, se.Status)
	assert.Equal(t, "blocked", se.Code)
	assert.ErrorIs(t, got, stepup.ErrBlocked)
}

// A browser refusal is a plain page whose title says what happened: a
// failed or used verification reads as such, other refusals by their status.
func TestRefusalPageTitles(t *testing.T) {
	tests := []struct {
		status int
		title  string
	}{
		{http.StatusForbidden, "Verification not completed"},
		{http.StatusConflict, "Verification not completed"},
		{http.StatusBadRequest, "Bad Request"},
		{http.StatusServiceUnavailable, "Service Unavailable"},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		stepup.WriteError(rec, httptest.NewRequest(http.MethodGet, "/", nil),
			&stepup.Error{Status: tc.status, Code: "x", Message: "m"}, false)
		assert.Equal(t, tc.status, rec.Code)
		assert.Contains(t, rec.Body.String(), "<title>"+tc.title+"</title>")
		assert.Equal(t, "nosniff", rec.Header().Get("X-Content-Type-Options"))
	}
}
