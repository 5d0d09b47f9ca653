package stepup

import (
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// Sentinel errors. Every refusal the guard makes wraps one of them in an
// *Error, so errors.Is works the same in net/http and in the adapters.
var (
	// ErrNotLoggedIn: the UserID function returned "" for a protected route.
	ErrNotLoggedIn = errors.New("stepup: not logged in")
	// ErrBlocked: Authsignal answered BLOCK.
	ErrBlocked = errors.New("stepup: action blocked")
	// ErrReview: Authsignal answered REVIEW_REQUIRED.
	ErrReview = errors.New("stepup: action held for review")
	// ErrReviewRejected: a request held for review (Policy.Review) that a
	// reviewer rejected, or that expired: it never runs.
	ErrReviewRejected = errors.New("stepup: review rejected or expired")
	// ErrUnenrolled: Authsignal answered ALLOW for a user with no second
	// factor (isEnrolled false), on a route whose policy's Unenrolled is
	// UnenrolledDeny (the default) or at sign-in.
	ErrUnenrolled = errors.New("stepup: user has no second factor enrolled")
	// ErrProvider: Authsignal could not be reached in time or answered
	// something the guard cannot trust. The guard fails closed.
	ErrProvider = errors.New("stepup: step-up provider unavailable")
	// ErrBodyTooLarge: the request body of a protected route is over
	// Config.MaxBodyBytes.
	ErrBodyTooLarge = errors.New("stepup: request body too large")
	// ErrUnsupportedBody: multipart or content-encoded bodies cannot be
	// parked.
	ErrUnsupportedBody = errors.New("stepup: request body cannot be parked")
	// ErrBodyConsumed: a middleware in front of the guard read the body
	// before the guard could keep it; see PreserveBody.
	ErrBodyConsumed = errors.New("stepup: request body was consumed before the guard")
	// ErrHeaderTooLarge: the headers a protected request would park are
	// over Config.MaxHeaderValues or MaxHeaderBytes.
	ErrHeaderTooLarge = errors.New("stepup: request headers too large")
	// ErrBadRequest: a request the guard refuses to park, such as a path
	// that could not be redirected to safely.
	ErrBadRequest = errors.New("stepup: request cannot be protected")
	// ErrTooManyChallenges: the user opened Config.MaxChallengesPerUser
	// challenges within ParkTTL, or the session MaxChallengesPerSession.
	ErrTooManyChallenges = errors.New("stepup: too many challenges")
	// ErrWrongMethod: a challenge was completed with a verification method
	// the action's Policy.Methods do not accept (or the provider reported
	// none). Nothing runs and nothing is spent: the park stays pending
	// for a proof with an accepted method within its lifetime.
	ErrWrongMethod = errors.New("stepup: verification method not accepted")
	// ErrMethodUnavailable: the provider allows the user none of the
	// verification methods the action's Policy.Methods accept, so no
	// challenge could succeed. Nothing is parked.
	ErrMethodUnavailable = errors.New("stepup: no accepted verification method available")
	// ErrStepUpFailed: a callback or a token retry that did not prove the
	// step-up for this user, action and parked request. Deliberately vague.
	ErrStepUpFailed = errors.New("stepup: step-up verification failed")
	// ErrAlreadyUsed: the token or the parked request was used before.
	ErrAlreadyUsed = errors.New("stepup: step-up already used")
	// ErrInternal: the guard could not do its work (session or store
	// failure, misconfiguration). It fails closed.
	ErrInternal = errors.New("stepup: internal error")
	// ErrMisconfigured: the guard is wired so that it cannot tell which
	// route a request reached (in front of something other than the
	// router, in echo's Pre chain, after a method override), or its
	// provider is configured so that no retry can work (a secret key
	// Authsignal refuses, a challenge URL outside Config.ChallengeOrigins).
	// It fails closed with a 500, even for a FailOpen policy, and logs how
	// to fix the configuration.
	ErrMisconfigured = errors.New("stepup: guard misconfigured")
	// ErrReplayNotReached: a verified request replayed by the callback was
	// answered before it reached the guard at its protected route (a
	// redirect, a CSRF or login check). Nothing was spent or run; the park
	// stays pending and the callback can be retried once that is fixed.
	ErrReplayNotReached = errors.New("stepup: replay did not reach the protected route")

	// ErrNotFound is what a Store returns for a missing or expired record.
	ErrNotFound = errors.New("stepup: record not found")
	// ErrExists is what Store.Put returns when the id is taken.
	ErrExists = errors.New("stepup: record already exists")
	// ErrConsumed is what Store.Consume returns for a record consumed before.
	ErrConsumed = errors.New("stepup: record already consumed")
	// ErrStoreFull is what a bounded Store returns when it cannot take more.
	ErrStoreFull = errors.New("stepup: store is full")
)

// Error is a refusal: the HTTP status the guard answers with, a short
// machine-readable code, a message safe to show to the user, and the cause.
// The cause may hold detail for logs; it is never written to the response.
type Error struct {
	Status  int    // HTTP status, e.g. 403
	Code    string // machine-readable, e.g. "blocked"
	Message string // plain words for the user
	Err     error  // one of the sentinels above, possibly wrapping a cause
}

// Error reads "stepup: 403 step_up_failed: step-up verification failed:
// <cause>": the package's name once, although the sentinel (and a cause
// from a Store) each start with it.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("stepup: %d %s: %s", e.Status, e.Code, unprefixed(e.Err.Error()))
	}
	return fmt.Sprintf("stepup: %d %s", e.Status, e.Code)
}

// unprefixed drops the "stepup: " that starts each error of a chain.
func unprefixed(s string) string {
	return strings.ReplaceAll(strings.TrimPrefix(s, "stepup: "), ": stepup: ", ": ")
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// refusal builds a refusal; the entry points report and write it.
func refusal(status int, code, msg string, err error) *Error {
	return &Error{Status: status, Code: code, Message: msg, Err: err}
}

func errNotLoggedIn() *Error {
	return refusal(http.StatusUnauthorized, "login_required", "Please sign in to continue.", ErrNotLoggedIn)
}

// errUnenrolled refuses a user with no second factor (Policy.Unenrolled
// UnenrolledDeny): a 403 before anything runs or is parked.
func errUnenrolled() *Error {
	return refusal(http.StatusForbidden, "unenrolled",
		"This action needs two-step verification, which is not set up for your account yet. "+
			"Set up two-step verification first, then try again. Nothing was done.", ErrUnenrolled)
}

// errStepUpFailed is every "no" about a token or park: the cause stays in
// logs, the user sees one plain sentence.
func errStepUpFailed(cause error) *Error {
	return refusal(http.StatusForbidden, "step_up_failed",
		"We could not confirm this verification, so nothing was done. Please start again.",
		fmt.Errorf("%w: %w", ErrStepUpFailed, cause))
}

// errNotJudged is a request that would run on an earlier step-up (a token
// retry, a replay) but presents something other than what was judged: a
// 403, nothing runs.
func errNotJudged(cause error) *Error {
	return refusal(http.StatusForbidden, "not_judged",
		"This request differs from the one you verified (its values, headers or content type changed), so nothing was done. Please start again.",
		fmt.Errorf("%w: not what was judged: %w", ErrStepUpFailed, cause))
}

func errUsed() *Error {
	return refusal(http.StatusConflict, "already_used",
		"This verification was already used. Nothing was done again.", ErrAlreadyUsed)
}

// errUncheckable is a request whose attributes the guard cannot read
// unambiguously: a 400 before anything is tracked.
func errUncheckable(cause error) *Error {
	return refusal(http.StatusBadRequest, "bad_request",
		"This request could not be checked.", fmt.Errorf("%w: attributes: %w", ErrBadRequest, cause))
}

func providerError(cause error) *Error {
	return refusal(http.StatusServiceUnavailable, "provider_unavailable",
		"Verification is unavailable right now. Nothing was done; please try again in a moment.",
		fmt.Errorf("%w: %w", ErrProvider, cause))
}

// errBusy is a store that cannot take more or cannot answer: nothing was
// done, and the client may try again later (a 503 carries Retry-After).
func errBusy(cause error) *Error {
	return refusal(http.StatusServiceUnavailable, "busy",
		"Verification is unavailable right now. Nothing was done; please try again in a moment.",
		fmt.Errorf("%w: store: %w", ErrInternal, storeFault{cause}))
}

func internalError(cause error) *Error {
	return refusal(http.StatusInternalServerError, "internal_error",
		"Something went wrong on our side. Nothing was done.", fmt.Errorf("%w: %w", ErrInternal, cause))
}

// errReplayNotReached is a replay answered (with status) before its route.
func errReplayNotReached(status int) *Error {
	return refusal(http.StatusInternalServerError, "replay_not_reached",
		"Your verification succeeded, but this request could not be carried out, so nothing was done. "+
			"Your verification is kept for a few minutes: reload this page to try again.",
		fmt.Errorf("%w: the application answered %d before the guard", ErrReplayNotReached, status))
}

// errMisconfigured is a wiring mistake found at request time.
func errMisconfigured(reason string) *Error {
	return refusal(http.StatusInternalServerError, "misconfigured",
		"This page is protected but not wired correctly, so nothing was done. The administrator has been told.",
		fmt.Errorf("%w: %s", ErrMisconfigured, reason))
}

// WriteError answers a refusal the way the guard answers its own:
// through Config.ErrorHandler when it is set, else with the package's
// [WriteError], as JSON or as a page according to Config.IsAPI. Adapters
// use it for the refusals they make themselves (Misconfigured, a body their
// router reads that the guard cannot).
func (g *Guard) WriteError(w http.ResponseWriter, r *http.Request, e *Error) { g.writeError(w, r, e) }

// writeError answers a refusal as Guard.WriteError does; an error that is
// not an *Error is answered as an internal error. Only the public code and
// message are written, never the cause.
func (g *Guard) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var e *Error
	if !errors.As(err, &e) {
		e = internalError(err)
	}
	if g.cfg.ErrorHandler != nil {
		g.cfg.ErrorHandler(w, r, e)
		return
	}
	WriteError(w, r, e, g.cfg.IsAPI(r))
}

// WriteError writes the default answer for a refusal, whatever the
// guard's Config says: JSON {"error": code, "message": …} when api is
// true, else a small HTML page; only the public code and message are
// written. A Config.ErrorHandler that only wants to change some refusals
// calls it for the others. To answer as a configured guard does (through
// its ErrorHandler and IsAPI), call [Guard.WriteError] instead.
func WriteError(w http.ResponseWriter, r *http.Request, e *Error, api bool) {
	w.Header().Set("Cache-Control", "no-store")
	if api {
		writeJSON(w, e.Status, map[string]string{"error": e.Code, "message": e.Message})
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(e.Status)
	title := http.StatusText(e.Status)
	if e.Status == http.StatusForbidden || e.Status == http.StatusConflict {
		title = "Verification not completed"
	}
	_ = refusalPage.Execute(w, struct{ Title, Message string }{title, e.Message})
}

var refusalPage = template.Must(template.New("refusal").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}h1{font-size:1.4rem}</style>
</head><body><h1>{{.Title}}</h1><p id="stepup-message">{{.Message}}</p><p><a href="/">Back to the start page</a></p></body></html>
`))

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
