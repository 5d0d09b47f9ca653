package stepup

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"strings"
)

// Callback serves the URL in Config.CallbackURL, where the challenge page
// sends the browser back with ?park=<id>&token=<jwt>. It checks that the
// park belongs to this session and user, validates the token with the
// provider for that user and action, checks that the token was issued for
// that very park (and is not one the challenge URL gave away), and then
// resumes the request:
//
//   - a parked POST, PUT, PATCH or DELETE is replayed through root, the
//     application's whole handler chain, with the parked method, path,
//     query, body and allow-listed headers, and the live request's cookies,
//     remote address, TLS state and forwarding headers (X-Forwarded-*,
//     Forwarded, X-Real-Ip). Token and park are spent, atomically in the
//     Store, when the replay reaches the guard at the protected route, just
//     before the handler runs. Its response is what the browser sees, and it
//     is kept so that a refresh shows it again without a second run. A
//     replay that is answered before it gets there (a redirect, a CSRF or
//     login check) spends nothing: the browser gets a refusal
//     (ErrReplayNotReached) and the same callback can be retried;
//   - a parked GET or HEAD: token and park are spent here, and the answer is
//     a 303 to its own path carrying a single-use pass that expires within
//     PassTTL.
//
// A callback of the park's user from another session ends that park: the
// challenge was completed by someone other than whoever parked it.
//
// The callback of a pending sign-in (Guard.SignIn) in the browser that
// started it completes that sign-in; anywhere else it is refused, and
// where nobody is logged in it ends the sign-in.
//
// Every answer carries Cache-Control: no-store and Referrer-Policy:
// no-referrer, since the URL holds a token. Refusals say what happened in
// plain words and never why a token failed.
func (g *Guard) Callback(root http.Handler) http.Handler {
	return &callbackHandler{g: g, serve: func(w http.ResponseWriter, r *http.Request) {
		noStore := []string{"no-store", "no-referrer"} // one allocation for both values
		w.Header()["Cache-Control"], w.Header()["Referrer-Policy"] = noStore[:1:1], noStore[1:]
		if r.Method != http.MethodGet {
			// Not even HEAD: a replay must never run for a request whose
			// answer nobody reads. No step-up was asked about: nothing to
			// report.
			w.Header().Set("Allow", "GET")
			g.writeError(w, r, refusal(http.StatusMethodNotAllowed, "method_not_allowed", "This address only answers GET.", ErrBadRequest))
			return
		}
		ev := Event{Method: r.Method, Path: r.URL.Path, Route: "callback"}
		var e *Error
		if id, ok := reviewQuery(r.URL.RawQuery); ok {
			ev.Route = "review" // a review's status URL (review.go)
			e = g.serveReview(w, r, root, id, &ev)
		} else {
			e = g.serveCallback(w, r, root, &ev)
		}
		if e != nil {
			g.report(r.Context(), ev, e)
			g.retryAfter(w, e)
			g.writeError(w, r, e)
		}
	}}
}

// serveCallback resumes the parked request or returns the refusal. It
// reports every decision but a refusal, and fills in ev (user, action) for
// the refusal Callback reports.
func (g *Guard) serveCallback(w http.ResponseWriter, r *http.Request, root http.Handler, ev *Event) *Error {
	ctx := r.Context()
	parkID, token, err := callbackParams(r.URL.RawQuery)
	if err != nil || !validID(parkID) {
		return refusal(http.StatusBadRequest, "bad_request",
			"This verification link is incomplete. Nothing was done.", ErrBadRequest)
	}
	if e, ok := g.signInCallback(w, r, parkID, token, ev); ok {
		return e // this browser's pending sign-in (signin.go)
	}
	user, err := g.cfg.UserID(r)
	if err != nil {
		return internalError(fmt.Errorf("UserID: %w", err))
	}
	if user == "" {
		if e, ok := g.signInElsewhere(w, r, parkID, token, ev); ok {
			return e // a sign-in started in another browser (signin.go)
		}
		return errNotLoggedIn()
	}
	ev.UserID = user
	st := g.loadSession(r, user)
	ref := st.park(parkID)
	if ref == nil {
		rec, err := g.cfg.Store.Get(ctx, parkID)
		if err == nil && rec.Kind == KindAPI && !rec.Consumed && rec.UserID == user && token != "" {
			// An API challenge completed in a popup: hand the token to
			// the page that opened it; the retry validates and spends it.
			g.handoff(w, rec, token)
			return nil
		}
		cause := errors.New("park not in this session")
		if err == nil && rec.Kind == KindPark && !rec.Consumed && rec.UserID == user {
			// The park's user, in another session: whoever completed the
			// challenge is not whoever parked the request (a stolen
			// session, a challenge link sent to the victim). A definite
			// "no" that ends the park, so that its own session cannot
			// redeem it later either.
			cause = errors.New("park of another session of this user: ended")
			if err := g.cfg.Store.Delete(ctx, parkID); err != nil {
				cause = fmt.Errorf("park of another session of this user: ending it: %w", err)
			}
		}
		// A park of another session or user, one evicted, expired, or a
		// callback without a session: all look the same from outside.
		_ = g.saveSession(w, r, st)
		return errStepUpFailed(cause)
	}
	// The park and the token's spent mark, in one read (MultiGetter).
	ids := [2]string{parkID}
	if token != "" {
		ids[1] = usedID(token)
	}
	recs, err := g.records.GetMany(ctx, ids[:1+min(1, len(token))]...)
	if err != nil {
		return errBusy(err)
	}
	rec := recs[0]
	if rec == nil {
		return refusal(http.StatusGone, "expired",
			"This verification took too long and has expired. Nothing was done; please start again.", ErrStepUpFailed)
	}
	ev.Action = rec.Action
	if rec.Kind != KindPark || rec.UserID != user {
		return errStepUpFailed(errors.New("park bound to another user"))
	}
	if rec.Consumed {
		// A refresh of a callback that already ran: the kept response,
		// never a second execution.
		out := g.keptOutcome(ctx, rec)
		if out == nil {
			return refusal(http.StatusConflict, "already_used",
				"This request was already carried out after your verification. It was not run again.", ErrAlreadyUsed)
		}
		g.emit(ctx, *ev, EventRefuse, "refresh: kept outcome shown")
		writeOutcome(w, out)
		return nil
	}
	if token == "" {
		return errStepUpFailed(errors.New("no token"))
	}
	bound, verr := g.validate(r, user, rec.Action, token, prefetched{park: rec, usedRead: true, used: recs[1] != nil})
	if verr != nil {
		if errors.Is(verr, ErrStepUpFailed) {
			// A definite "no" (failed, cancelled, foreign token) ends this
			// park; a provider failure leaves it pending for another try.
			g.dropPark(w, r, st, parkID)
		}
		return verr
	}
	if bound.ID != rec.ID {
		g.dropPark(w, r, st, parkID)
		return errStepUpFailed(errors.New("token issued for another park"))
	}
	rec.VerificationMethod = bound.VerificationMethod // for the grant and the route's own check
	if rec.Method == http.MethodGet || rec.Method == http.MethodHead {
		// Resumed by a pass, not replayed: spend here.
		if e := g.spend(ctx, rec, token); e != nil {
			return e
		}
		g.settle(r, st, ref, rec)
		if e := g.resumeGet(w, r, st, rec); e != nil {
			return e
		}
		g.emit(ctx, *ev, EventReplay, "pass")
		return nil
	}
	return g.replay(w, r, root, st, ref, rec, token)
}

// callbackParams reads park and token from a callback's raw query as
// url.ParseQuery and Values.Get read them, without building the map: the
// first value of each wins, '+' is a space, and the query is an error
// exactly when url.ParseQuery finds one (checkQuery: a bad escape, a ';',
// more pairs than its limit), whatever its park and token. FuzzCallbackParamsMatchParseQuery
// holds it to url.ParseQuery.
func callbackParams(query string) (park, token string, err error) {
	if err := checkQuery(query); err != nil {
		return "", "", err
	}
	var havePark, haveToken bool
	for query != "" {
		var pair string
		pair, query, _ = strings.Cut(query, "&")
		k, v, _ := strings.Cut(pair, "=")
		switch key := unescapeQuery(k); {
		case key == "park" && !havePark:
			park, havePark = unescapeQuery(v), true
		case key == "token" && !haveToken:
			token, haveToken = unescapeQuery(v), true
		}
	}
	return park, token, nil
}

// settle records in the session of r that a spent park is done, gives its
// Remember grant, and counts the challenge as passed.
func (g *Guard) settle(r *http.Request, st *sessionState, ref *parkRef, rec *Record) {
	ref.Done = true
	st.dirty = true
	g.grant(r.Context(), st, rec)
	g.passed(r, st, rec)
}

// resumeGet gives the browser a single-use pass for the parked GET, bound
// to what its rules judged, and sends it there.
func (g *Guard) resumeGet(w http.ResponseWriter, r *http.Request, st *sessionState, rec *Record) *Error {
	ctx := r.Context()
	now := g.now()
	pass := &Record{ID: newID(), Kind: KindPass, UserID: rec.UserID, Action: rec.Action, Method: http.MethodGet,
		Path: rec.Path, Query: rec.Query, Judged: rec.Judged, Created: now, Expires: now.Add(g.cfg.PassTTL), Park: rec.ID}
	if err := g.cfg.Store.Put(ctx, pass); err != nil {
		return errBusy(err)
	}
	st.addPass(pass.ID, rec.Action, pass.Expires)
	if err := g.saveSession(w, r, st); err != nil {
		return internalError(err)
	}
	loc := location(rec)
	_ = g.cfg.Store.Put(ctx, &Record{ID: outcomeID(rec.ID), Kind: KindOutcome, Status: http.StatusSeeOther,
		Header: http.Header{"Location": {loc}}, Created: now, Expires: rec.Expires, Park: rec.ID})
	w.Header().Set("Location", loc)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

var handoffPage = template.Must(template.New("handoff").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Verification complete</title></head>
<body><p>Verification complete. You can close this window and return to the application.</p>
<script nonce="{{.Nonce}}">
(function () {
  var msg = {type: "stepup:token", action: {{.Action}}, token: {{.Token}}};
  if (window.opener) { window.opener.postMessage(msg, {{.Origin}}); window.close(); }
})();
</script></body></html>
`))

// handoff answers the callback of an API challenge completed in a popup:
// a page that posts the token to its opener, restricted to the callback's
// own origin. Nothing is validated or spent here: the API client resends
// its request with the token in the Step-Up-Token header.
func (g *Guard) handoff(w http.ResponseWriter, rec *Record, token string) {
	nonce := newID()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_ = handoffPage.Execute(w, struct{ Nonce, Action, Token, Origin string }{
		nonce, rec.Action, token, g.callback.Scheme + "://" + g.callback.Host})
}

func (g *Guard) dropPark(w http.ResponseWriter, r *http.Request, st *sessionState, parkID string) {
	keep := st.data.Parks[:0]
	for _, p := range st.data.Parks {
		if p.ID != parkID {
			keep = append(keep, p)
		}
	}
	st.data.Parks = keep
	st.dirty = true
	st.stale = append(st.stale, parkID)
	_ = g.saveSession(w, r, st)
}
