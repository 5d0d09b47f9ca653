package stepup

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/stepupkit/stepup/authsignal"
)

// SignIn configures MFA at sign-in: Guard.SignIn, called by the
// application's login handler once the first factor (a password, a magic
// link, SSO) checked out, tracks Action for the user and starts the
// application's login session through Complete only when Authsignal
// allows it, or after the challenge it asks for is passed, in the same
// browser. The guard binds a pending sign-in to the browser with a cookie
// of its own next to its session cookie, named Config.SessionName plus
// "-signin" ("stepup-signin"), sealed and set with the same options.
type SignIn struct {
	// Action is the Authsignal action code tracked at sign-in. Optional.
	// Default "signIn".
	Action string
	// Complete starts the application's login session for userID in the
	// browser (or API client) that made r. The guard calls it exactly once
	// per successful sign-in, once the second factor is satisfied: in the
	// SignIn request when Authsignal allows the sign-in, else in the
	// callback request (or the API client's retry with the token). It must
	// start a new session (a new session id), never promote the one the
	// request came with: a session id planted before the sign-in must not
	// become a logged-in one (session fixation). It may answer the request
	// itself; when it writes nothing, the guard answers with a 303 to Next
	// (browser) or a 204 (API). An error is answered with a 500 and logged,
	// and ends the sign-in. Required.
	Complete func(w http.ResponseWriter, r *http.Request, userID string) error
	// Next is the local path ("/home", with an optional query) a browser
	// is sent to after Complete, when Complete wrote no answer. It is
	// configuration only: no return URL is ever read from the client.
	// Optional. Default "/".
	Next string
}

// signInSetup is the checked Config.SignIn and what the guard built for
// it in New.
type signInSetup struct {
	SignIn
	rule   *rule       // Action, for track
	cookie string      // the name of the sign-in cookie (signInCookieName)
	codec  cookieCodec // seals that cookie with CookieKeys or a CookieStore; nil through Config.Sessions
}

// newSignIn checks cfg.SignIn and applies its defaults, after the rest of
// the configuration had its own.
func newSignIn(cfg *Config) (*signInSetup, error) {
	si := *cfg.SignIn
	if si.Action == "" {
		si.Action = "signIn"
	}
	if si.Next == "" {
		si.Next = "/"
	}
	if si.Complete == nil {
		return nil, errors.New("stepup: Config.SignIn.Complete is required")
	}
	if !isLocalLocation(si.Next) {
		return nil, fmt.Errorf("stepup: Config.SignIn.Next %q must be a local path such as /home", si.Next)
	}
	rl, err := Policy{Method: "*", Route: "/", Action: si.Action}.compile()
	if err != nil {
		return nil, fmt.Errorf("stepup: Config.SignIn: %w", err)
	}
	s := &signInSetup{SignIn: si, rule: rl, cookie: cfg.SessionName + signInCookieSuffix}
	if len(cfg.CookieKeys) > 0 {
		kc, err := newKeyedCookie(cfg.CookieKeys, s.cookie)
		if err != nil {
			return nil, err
		}
		s.codec = kc
	} else if codecs := ownCodecs(cfg.Sessions); codecs != nil {
		s.codec = secureCookies{name: s.cookie, codecs: codecs}
	}
	return s, nil
}

// SignIn finishes a sign-in whose first factor the application checked:
// it tracks Config.SignIn.Action for userID (with the client's IP
// address, user agent and Config.DeviceID, as for protected routes) and
// answers the request in every case:
//
//   - ALLOW for an enrolled user: Complete runs in this request, then a 303
//     to Next (browser) or a 204 (API), unless Complete answered itself;
//   - CHALLENGE_REQUIRED: a pending sign-in is kept in the Store (user,
//     action and idempotency key; never the request's body or any
//     credential) and bound to this browser by the guard's sign-in cookie;
//     a browser is sent to the challenge with a 303, and the guard's
//     Callback completes the sign-in in this browser only (Complete runs
//     there, once). An API client (Config.IsAPI) gets the 401 challenge of
//     protected routes; it completes the challenge, then sends the same
//     sign-in request again with the token in the Step-Up-Token header:
//     the application checks the first factor again and calls SignIn,
//     which validates the token for this user and that pending sign-in,
//     spends it, and runs Complete;
//   - BLOCK, REVIEW_REQUIRED, and ALLOW for a user with no second factor
//     (isEnrolled false): 403, nothing starts;
//   - the provider down or answering garbage: 503 with Retry-After;
//     there is no fail-open at sign-in.
//
// Sign-in challenges are capped like step-up ones (MaxChallengesPerUser,
// MaxChallengesPerSession: 429 beyond), counted apart from them, and
// apart again for browsers the user already signed in from: someone who
// knows only the password can neither flood the user with codes nor lock
// the user out of signing in or of stepping up. A passed sign-in
// challenge gives its slot back; pending, failed and cancelled ones count
// for ParkTTL.
//
// At every completed sign-in the guard drops its own state of the
// browser (as Forget does) before Complete runs. Without Config.SignIn,
// SignIn answers with a 500 (ErrMisconfigured) and signs nobody in.
func (g *Guard) SignIn(w http.ResponseWriter, r *http.Request, userID string) {
	if g.signIn == nil {
		g.writeError(w, r, g.Misconfigured(r, "Guard.SignIn called, but Config.SignIn is not set"))
		return
	}
	ev := Event{Action: g.signIn.Action, UserID: userID, Method: r.Method, Route: "sign-in", Path: r.URL.Path, SignIn: true}
	if e := g.serveSignIn(w, r, userID, &ev); e != nil {
		g.report(r.Context(), ev, e)
		g.retryAfter(w, e)
		g.writeError(w, r, e)
	}
}

// serveSignIn decides, and either answers the request or returns the
// refusal, unwritten, for SignIn to report and write. It reports every
// decision but a refusal.
func (g *Guard) serveSignIn(w http.ResponseWriter, r *http.Request, user string, ev *Event) *Error {
	ctx := r.Context()
	si := g.signIn
	if user == "" {
		return internalError(errors.New("Guard.SignIn called without a user id"))
	}
	sc := g.loadSignIn(r)
	if tok := r.Header.Get(TokenHeader); tok != "" {
		return g.redeemSignIn(w, r, user, tok, sc, ev)
	}
	id := newID()
	slot, e := g.reserveSignIn(w, r, id, user, sc)
	if e != nil {
		return e
	}
	resp, err := g.track(r, si.rule, user, id, nil)
	if err != nil || resp.State != authsignal.StateChallengeRequired {
		_ = g.limiter.Release(ctx, slot) // no challenge was opened
	}
	if err != nil {
		return providerError(err)
	}
	ev.State = resp.State
	switch resp.State {
	case authsignal.StateAllow:
		if !resp.IsEnrolled {
			if e := g.signInUnenrolled(); e != nil {
				return e
			}
		}
		return g.completeSignIn(w, r, user, sc, nil, HowAllow, ev)
	case authsignal.StateBlock:
		return refusal(http.StatusForbidden, "blocked", "This sign-in is not allowed.", ErrBlocked)
	case authsignal.StateReviewRequired:
		return refusal(http.StatusForbidden, "review_required",
			"This sign-in needs a review before it can go ahead. You are not signed in.", ErrReview)
	case authsignal.StateChallengeRequired:
		if e := g.pendSignIn(w, r, user, id, resp, sc, ev); e != nil {
			_ = g.limiter.Release(ctx, slot)
			return e
		}
		return nil
	default:
		return providerError(fmt.Errorf("unexpected state %q", resp.State))
	}
}

// signInUnenrolled is the rule for a sign-in that Authsignal allows for a
// user with no second factor (isEnrolled false): a refusal, since letting
// it through would be a sign-in on the password alone. It is the place
// where a configurable rule for unenrolled users plugs in; nil lets the
// sign-in through.
func (g *Guard) signInUnenrolled() *Error {
	return refusal(http.StatusForbidden, "unenrolled",
		"Two-step verification is not set up for this account, so you cannot sign in here yet. "+
			"Set up two-step verification, then sign in again.", ErrUnenrolled)
}

// reserveSignIn takes a slot for a sign-in challenge (see Counter), in
// the sign-in buckets (kindSignIn): counted apart from the step-up
// challenges of the same user, so that sign-in attempts never use up the
// user's step-up caps. A browser the user signed in from before counts in
// the established bucket, per browser as a session, which fresh clients
// (anyone with the password) cannot fill.
func (g *Guard) reserveSignIn(w http.ResponseWriter, r *http.Request, id, user string, sc *signInState) (Slot, *Error) {
	if sc.knows(user) {
		return g.reserveIn(w, r, capBucket(kindSignIn, true), id, user, sc.data.Browser)
	}
	return g.reserveIn(w, r, capBucket(kindSignIn, false), id, user, "")
}

// releaseSignIn gives back the slot of a sign-in challenge that was
// passed (releasePassed).
func (g *Guard) releaseSignIn(ctx context.Context, rec *Record, sc *signInState) {
	g.releasePassed(ctx, kindSignIn, rec.ID, rec.UserID, sc.data.Browser)
}

// pendSignIn keeps the pending sign-in that a challenge opened, binds it
// to this browser (the sign-in cookie), and answers with the challenge.
func (g *Guard) pendSignIn(w http.ResponseWriter, r *http.Request, user, id string, resp *authsignal.TrackResponse,
	sc *signInState, ev *Event) *Error {
	now := g.now()
	rec := &Record{ID: id, Kind: KindSignIn, UserID: user, Action: g.signIn.Action, Shown: shownTokens(resp),
		Created: now, Expires: now.Add(g.cfg.ParkTTL)}
	api := g.cfg.IsAPI(r)
	if api {
		rec.Kind, rec.Method, rec.Path = KindSignInAPI, r.Method, r.URL.EscapedPath()
		if !safePath(rec.Path) {
			return refusal(http.StatusBadRequest, "bad_request", "This sign-in address cannot be verified.", ErrBadRequest)
		}
	}
	if err := g.cfg.Store.Put(r.Context(), rec); err != nil {
		return errBusy(err)
	}
	if old := sc.data.Pending; old != "" {
		_ = g.cfg.Store.Delete(r.Context(), old) // one pending sign-in per browser
	}
	sc.data.Pending, sc.data.Until, sc.data.Done = id, rec.Expires.Unix(), false
	if err := g.saveSignIn(w, r, sc); err != nil && !api {
		// API clients may keep no cookies: their retry carries the token.
		_ = g.cfg.Store.Delete(r.Context(), id)
		return internalError(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	if api {
		g.emit(r.Context(), *ev, EventChallenge, "sign-in: api")
		g.writeAPIChallenge(w, rec.Action, resp.URL, nil, nil)
		return nil
	}
	g.emit(r.Context(), *ev, EventChallenge, "sign-in: browser")
	w.Header().Set("Location", resp.URL)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// signInCallback answers the callback of this browser's pending
// sign-in, the one its sign-in cookie holds; ok is false for any other
// callback. A pending sign-in is finished only in the browser that
// started it (see signInElsewhere for its callback anywhere else).
func (g *Guard) signInCallback(w http.ResponseWriter, r *http.Request, parkID, token string, ev *Event) (e *Error, ok bool) {
	if g.signIn == nil || (g.signIn.codec != nil && !hasCookie(r, g.signIn.cookie)) {
		return nil, false // the common case: a step-up callback, no sign-in cookie to open
	}
	sc := g.loadSignIn(r)
	if sc.data.Pending == "" || sc.data.Pending != parkID {
		return nil, false
	}
	ev.SignIn = true
	return g.finishSignIn(w, r, parkID, token, sc, ev), true
}

// signInElsewhere answers a callback that a browser where nobody is
// logged in did not start, when it is a sign-in's; ok is false for any
// other. A sign-in's callback URL opened in a browser other than the one
// that entered the password is a login CSRF, or a challenge completed by
// someone other than whoever entered it (a phished user): refused, and the
// pending sign-in ended, so that the URL cannot sign anybody in later. (In
// a browser where someone is logged in, the step-up way refuses it as a
// park of no session.) The callback of an API sign-in completed in a popup
// hands the token to the page that opened it, as for step-up.
func (g *Guard) signInElsewhere(w http.ResponseWriter, r *http.Request, parkID, token string, ev *Event) (e *Error, ok bool) {
	if g.signIn == nil {
		return nil, false
	}
	ctx := r.Context()
	rec, err := g.cfg.Store.Get(ctx, parkID)
	if err != nil || (rec.Kind != KindSignIn && rec.Kind != KindSignInAPI) {
		return nil, false
	}
	ev.SignIn, ev.UserID, ev.Action = true, rec.UserID, rec.Action
	if rec.Kind == KindSignInAPI && !rec.Consumed && token != "" {
		g.handoff(w, rec, token)
		return nil, true
	}
	cause := errors.New("sign-in callback in a browser that did not start it")
	if !rec.Consumed {
		cause = errors.New("sign-in callback in a browser that did not start it: sign-in ended")
		if err := g.cfg.Store.Delete(ctx, parkID); err != nil {
			cause = fmt.Errorf("sign-in callback in a browser that did not start it: ending it: %w", err)
		}
	}
	return errStepUpFailed(cause), true
}

// finishSignIn validates the token of this browser's pending sign-in,
// spends it, and completes the sign-in.
func (g *Guard) finishSignIn(w http.ResponseWriter, r *http.Request, parkID, token string, sc *signInState, ev *Event) *Error {
	ctx := r.Context()
	rec, err := g.cfg.Store.Get(ctx, parkID)
	if errors.Is(err, ErrNotFound) {
		g.endSignIn(w, r, sc)
		return refusal(http.StatusGone, "expired",
			"This verification took too long and has expired. You are not signed in; please sign in again.", ErrStepUpFailed)
	} else if err != nil {
		return errBusy(err)
	}
	ev.UserID, ev.Action = rec.UserID, rec.Action
	switch {
	case rec.Kind == KindSignInAPI && !rec.Consumed && token != "":
		// Completed in a popup: hand the token to the page that opened
		// it, whose retry of the sign-in request validates and spends it.
		g.handoff(w, rec, token)
		return nil
	case rec.Kind != KindSignIn || rec.Action != g.signIn.Action:
		g.endSignIn(w, r, sc)
		return errStepUpFailed(errors.New("sign-in cookie names a record that is no pending sign-in"))
	case rec.Consumed && sc.data.Done:
		// A refresh of the callback that signed this browser in: nothing
		// runs again.
		g.emit(ctx, *ev, EventRefuse, "sign-in: refresh after completion")
		w.Header().Set("Location", g.signIn.Next)
		w.WriteHeader(http.StatusSeeOther)
		return nil
	case rec.Consumed:
		return errUsed()
	case token == "":
		return errStepUpFailed(errors.New("no token"))
	}
	bound, e := g.validate(r, rec.UserID, rec.Action, token, prefetched{park: rec})
	if e == nil && bound.ID != rec.ID {
		e = errStepUpFailed(errors.New("token issued for another sign-in"))
	}
	if e != nil {
		if errors.Is(e.Err, ErrStepUpFailed) {
			// A definite "no" (failed, cancelled, foreign token) ends the
			// pending sign-in; a provider failure leaves it for a retry.
			_ = g.cfg.Store.Delete(ctx, rec.ID)
			g.endSignIn(w, r, sc)
		}
		return e
	}
	if e := g.spend(ctx, rec, token); e != nil {
		return e
	}
	g.releaseSignIn(ctx, rec, sc)
	return g.completeSignIn(w, r, rec.UserID, sc, rec, HowChallenge, ev)
}

// redeemSignIn completes the sign-in of an API client that sends its
// sign-in request again with the token of the challenge it passed: the
// token must be valid for this user and the sign-in action, and name a
// pending API sign-in of this user made by the same method at the same
// path. It is spent once.
func (g *Guard) redeemSignIn(w http.ResponseWriter, r *http.Request, user, token string, sc *signInState, ev *Event) *Error {
	rec, e := g.validate(r, user, g.signIn.Action, token, prefetched{})
	if e != nil {
		return e
	}
	if rec.Kind != KindSignInAPI || rec.Method != r.Method || rec.Path != r.URL.EscapedPath() {
		return errStepUpFailed(errors.New("token of another challenge than this sign-in's"))
	}
	if e := g.spend(r.Context(), rec, token); e != nil {
		return e
	}
	g.releaseSignIn(r.Context(), rec, sc)
	return g.completeSignIn(w, r, user, sc, rec, HowToken, ev)
}

// completeSignIn drops the guard's own state of the browser (a sign-in
// starts a new session: nothing kept before carries over), then runs
// Complete for user. The sign-in cookie, which remembers the browser as one
// user signed in from and marks the pending sign-in done, goes out with
// the first byte of the answer, so that a Complete that fails without
// answering leaves only the sign-in ended. rec is the pending sign-in, nil
// after an ALLOW.
func (g *Guard) completeSignIn(w http.ResponseWriter, r *http.Request, user string, sc *signInState, rec *Record,
	how How, ev *Event) *Error {
	ctx := r.Context()
	ev.UserID = user
	if err := g.Forget(w, r); err != nil {
		g.endSignIn(w, r, sc)
		return internalError(fmt.Errorf("dropping the guard's state at sign-in: %w", err))
	}
	var saveErr error
	cw := &signInWriter{ResponseWriter: w, commit: func() {
		switch {
		case rec != nil && rec.ID == sc.data.Pending:
			sc.data.Done = true // a refresh of its callback goes to Next
		case sc.data.Pending != "":
			_ = g.cfg.Store.Delete(ctx, sc.data.Pending) // superseded by this sign-in
			sc.data.Pending, sc.data.Until, sc.data.Done = "", 0, false
		}
		sc.signedIn(user)
		saveErr = g.saveSignIn(w, r, sc)
	}}
	if err := g.signIn.Complete(cw, r, user); err != nil {
		if !cw.wrote {
			g.endSignIn(w, r, sc)
			return internalError(fmt.Errorf("SignIn.Complete: %w", err))
		}
		// Complete answered, then failed: its answer stands; the log says.
		ev.Err = fmt.Errorf("%w: SignIn.Complete answered, then failed: %w", ErrInternal, err)
		g.emit(ctx, *ev, EventRefuse, "sign-in: Complete failed")
		return nil
	}
	if !cw.wrote {
		cw.start()
		if g.cfg.IsAPI(r) {
			w.WriteHeader(http.StatusNoContent)
		} else {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Location", g.signIn.Next)
			w.WriteHeader(http.StatusSeeOther)
		}
	}
	if saveErr != nil {
		// Signed in all the same; the browser is only not remembered.
		ev.Err = fmt.Errorf("saving the sign-in cookie: %w", saveErr)
	}
	g.emit(ctx, *ev, EventSignIn, "sign-in: "+string(how))
	return nil
}

// endSignIn forgets this browser's pending sign-in.
func (g *Guard) endSignIn(w http.ResponseWriter, r *http.Request, sc *signInState) {
	if sc.data.Pending == "" {
		return
	}
	sc.data.Pending, sc.data.Until, sc.data.Done = "", 0, false
	_ = g.saveSignIn(w, r, sc)
}

// signInWriter runs commit just before the first byte of Complete's
// answer, or when the guard answers for it (start).
type signInWriter struct {
	http.ResponseWriter
	commit func()
	wrote  bool
}

func (cw *signInWriter) start() {
	if !cw.wrote {
		cw.wrote = true
		cw.commit()
	}
}

func (cw *signInWriter) WriteHeader(status int) {
	cw.start()
	cw.ResponseWriter.WriteHeader(status)
}

func (cw *signInWriter) Write(b []byte) (int, error) {
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	return cw.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the server's writer.
func (cw *signInWriter) Unwrap() http.ResponseWriter { return cw.ResponseWriter }

// Flush implements http.Flusher when the server's writer does.
func (cw *signInWriter) Flush() {
	cw.start()
	_ = http.NewResponseController(cw.ResponseWriter).Flush()
}

// Hijack implements http.Hijacker when the server's writer does.
func (cw *signInWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	cw.start()
	return http.NewResponseController(cw.ResponseWriter).Hijack()
}
