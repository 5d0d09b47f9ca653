package stepup

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// Review then run (Policy.Review, docs/review.md). A request that
// Authsignal answers with REVIEW_REQUIRED, on a route whose policy has a
// positive Review, is parked as a KindReview record for that long: sealed
// like every record, bound to its user and to the session that made it
// (Record.Session), with the digest of what its rules judged. Its status
// URL is the callback's own URL with ?review=<id>, so nothing more needs
// mounting. A visit of that URL from the same user and session learns the
// review's state (a webhook's KindDecision record, else Authsignal's get
// action, at most once per ReviewPoll per park and instance) and then
//
//   - pending: 200 "waiting for approval" (a page that refreshes itself)
//     or, for an API client, 202 Accepted with the same JSON as the park;
//   - approved: the parked request runs once, as the callback replays it,
//     through the application's whole chain with the live request's
//     cookies (and Authorization), and its answer is kept for later visits;
//     a parked GET of a browser ends at its own URL with a single-use pass;
//   - rejected (or any settled state but REVIEW_SUCCEEDED): 403, and the
//     park is ended for good: consumed, so that no later approval runs it.
//
// Consume on the review park is what lets exactly one visit, of any number
// across instances, run it.

// reviewParam is the query parameter of a status URL that holds the park id.
const reviewParam = "review"

// reviewBucket is the Counter bucket of pending reviews: each counts for
// its user and session from the park until it runs, is ended, or expires.
const reviewBucket = "review"

// decisionID is the id of the record that keeps a reviewer's decision on
// the review park parkID, as a webhook reported it.
func decisionID(parkID string) string { return "d." + parkID }

// decisionApproved is the Status of a KindDecision record: an approval.
// A rejection needs no record: it ends the park (endReview).
const decisionApproved = http.StatusOK

// reviewEndedHeader marks the kept outcome of a review that was ended
// without running (rejected): a replay's kept outcome never has it, since
// keepOutcome keeps only Content-Type and Location.
const reviewEndedHeader = "Stepup-Review"

// ActionGetter is what a Provider offers for reviews: Authsignal's get
// action. *authsignal.Client has it. With a Provider without it, a review's
// state is learned from webhooks only (Guard.Webhook).
type ActionGetter interface {
	GetAction(ctx context.Context, userID, action, idempotencyKey string) (*authsignal.Action, error)
}

var _ ActionGetter = (*authsignal.Client)(nil)

// reviewState is what the guard knows of a review.
type reviewState int

const (
	reviewPending reviewState = iota
	reviewApproved
	reviewRejected
)

// statusPath is the same-origin path and query of the status URL of the
// review park id.
func (g *Guard) statusPath(id string) string {
	p := g.callback.EscapedPath()
	if p == "" {
		p = "/"
	}
	q := reviewParam + "=" + id
	if g.callback.RawQuery != "" {
		q = g.callback.RawQuery + "&" + q
	}
	return p + "?" + q
}

// statusURL is the absolute status URL of the review park id.
func (g *Guard) statusURL(id string) string {
	return g.callback.Scheme + "://" + g.callback.Host + g.statusPath(id)
}

// reviewQuery returns the park id of a status URL's query, and false for
// any other callback query (one without the review parameter). A query
// that does not parse is not a status URL: the callback refuses it.
func reviewQuery(rawQuery string) (string, bool) {
	if !strings.Contains(rawQuery, reviewParam+"=") {
		return "", false
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil || !q.Has(reviewParam) {
		return "", false
	}
	return q.Get(reviewParam), true
}

// parkReview parks a request that Authsignal holds for review (rl.Review
// positive) and answers with its status URL: a 303 there for a browser, a
// 202 with it for an API client. parkID is the idempotency key the action
// was tracked with; st is the guard's session when already loaded.
func (g *Guard) parkReview(w http.ResponseWriter, r *http.Request, rl *rule, user, parkID string, body []byte,
	custom map[string]any, st *sessionState, ev *Event) *Error {
	ctx := r.Context()
	if rl.methods != 0 {
		// A reviewer's approval proves no verification method: it could
		// never run where Policy.Methods asks for one.
		return refusal(g.cfg.ReviewStatus, "review_required",
			"This action needs a review before it can go ahead; nothing was done yet.",
			fmt.Errorf("%w: the policy's Methods cannot be met by a review", ErrReview))
	}
	digest, err := judged(rl, custom, r.Header)
	if err != nil {
		return internalError(err)
	}
	now := g.now()
	rec := &Record{
		ID: parkID, Kind: KindReview, UserID: user, Action: rl.Action, Method: r.Method,
		Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Judged: digest, Body: body,
		Header: g.keepHeaders(r.Header, rl), Created: now, Expires: now.Add(rl.Review),
	}
	if !safePath(rec.Path) || !safeQuery(rec.Query) {
		return refusal(http.StatusBadRequest, "bad_request",
			"This address cannot be held for review and resumed.", ErrBadRequest)
	}
	if st == nil {
		st = g.loadSession(r, user)
	}
	if g.cfg.SessionID == nil {
		st.opened(rec.Expires) // the guard's session id, kept in its cookie as long as the review waits
	}
	rec.Session = g.capSession(r, st)
	if rec.Session == "" {
		// Config.SessionID says this client has no session: nobody could
		// be told apart from it later, so nothing waits for it.
		return refusal(g.cfg.ReviewStatus, "review_required",
			"This action needs a review before it can go ahead; nothing was done yet.",
			fmt.Errorf("%w: no session to bind the review to", ErrReview))
	}
	slot := Slot{ID: parkID, User: user, Session: rec.Session, Bucket: reviewBucket, At: now, Expires: rec.Expires}
	wait, err := g.limiter.Reserve(ctx, slot, g.cfg.MaxChallengesPerUser, g.cfg.MaxChallengesPerSession)
	switch {
	case errors.Is(err, ErrTooManyChallenges):
		w.Header().Set("Retry-After", strconv.Itoa(max(1, int((wait+time.Second-1)/time.Second))))
		return refusal(http.StatusTooManyRequests, "too_many_reviews",
			"Too many requests are waiting for review. Nothing was done; wait for the open ones.", err)
	case err != nil:
		return errBusy(fmt.Errorf("review counter: %w", err))
	}
	if err := g.cfg.Store.Put(ctx, rec); err != nil {
		_ = g.limiter.Release(ctx, slot)
		return errBusy(err)
	}
	if err := g.saveSession(w, r, st); err != nil {
		_ = g.cfg.Store.Delete(ctx, rec.ID)
		_ = g.limiter.Release(ctx, slot)
		return internalError(err)
	}
	g.emit(ctx, *ev, EventReview, "parked")
	w.Header().Set("Cache-Control", "no-store")
	if g.cfg.IsAPI(r) {
		g.writeReviewPending(w, rec)
		return nil
	}
	w.Header().Set("Location", g.statusPath(rec.ID))
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// writeReviewPending answers an API client while its review waits: 202,
// Location and JSON with the status URL and the seconds left.
func (g *Guard) writeReviewPending(w http.ResponseWriter, rec *Record) {
	w.Header().Set("Location", g.statusPath(rec.ID))
	w.Header().Set("Retry-After", strconv.Itoa(int((g.cfg.ReviewPoll+time.Second-1)/time.Second)))
	writeJSON(w, http.StatusAccepted, map[string]any{
		"status":    "pending",
		"message":   "This request waits for a reviewer's approval. Poll statusUrl with the same credentials: it runs once approved.",
		"action":    rec.Action,
		"statusUrl": g.statusURL(rec.ID),
		"expiresIn": max(0, int(rec.Expires.Sub(g.now())/time.Second)),
	})
}

var reviewPage = template.Must(template.New("review").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="{{.Refresh}}">
<title>Waiting for approval</title></head>
<body><h1>Waiting for approval</h1>
<p>Your request ({{.Action}}) needs a reviewer's approval. It will be carried out once, here, as soon as it is approved.
This page checks again every {{.Refresh}} seconds; you can also come back to it later.</p>
<p>It expires in about {{.Left}}.</p></body></html>
`))

// writeReviewWaiting answers a browser while its review waits: a page
// that refreshes itself.
func (g *Guard) writeReviewWaiting(w http.ResponseWriter, rec *Record) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	left := max(0, rec.Expires.Sub(g.now())).Round(time.Minute)
	if left < time.Minute {
		left = time.Minute
	}
	_ = reviewPage.Execute(w, struct {
		Refresh int
		Action  string
		Left    string
	}{int((g.cfg.ReviewPoll + time.Second - 1) / time.Second), rec.Action, strings.TrimSuffix(left.String(), "0s")})
}

func errReviewRejected(cause error) *Error {
	return refusal(http.StatusForbidden, "review_rejected",
		"A reviewer did not approve this request. It was not carried out, and it will not be.",
		fmt.Errorf("%w: %w", ErrReviewRejected, cause))
}

func errReviewExpired() *Error {
	return refusal(http.StatusGone, "review_expired",
		"This request is no longer waiting for review (it expired, or it is not known here). Nothing was done.",
		ErrReviewRejected)
}

// serveReview answers a visit of the status URL of the review park id
// (see the comment at the top of this file), or returns the refusal.
func (g *Guard) serveReview(w http.ResponseWriter, r *http.Request, root http.Handler, id string, ev *Event) *Error {
	ctx := r.Context()
	if !validID(id) {
		return refusal(http.StatusBadRequest, "bad_request", "This approval link is incomplete. Nothing was done.", ErrBadRequest)
	}
	user, err := g.cfg.UserID(r)
	if err != nil {
		return internalError(fmt.Errorf("UserID: %w", err))
	}
	if user == "" {
		return errNotLoggedIn()
	}
	ev.UserID = user
	rec, err := g.cfg.Store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return errReviewExpired()
	} else if err != nil {
		return errBusy(err)
	}
	var st *sessionState
	if g.cfg.SessionID == nil {
		st = g.loadSession(r, user)
	}
	if rec.Kind != KindReview || rec.UserID != user || !sameSession(rec.Session, g.capSession(r, st)) {
		// Another user's, another session's, or not a review at all: all
		// look alike, and nothing changes (the session that parked it can
		// still come back).
		return errStepUpFailed(errors.New("review park of another session or user"))
	}
	ev.Action = rec.Action
	if rec.Consumed {
		return g.reviewDone(w, r, rec, ev)
	}
	switch g.reviewStateOf(ctx, rec) {
	case reviewPending:
		w.Header().Set("Cache-Control", "no-store")
		if g.cfg.IsAPI(r) {
			g.writeReviewPending(w, rec)
		} else {
			g.writeReviewWaiting(w, rec)
		}
		return nil
	case reviewRejected:
		if e := g.endReview(ctx, rec); e == nil {
			return errReviewRejected(errors.New("rejected"))
		} else if !errors.Is(e, ErrAlreadyUsed) {
			return e
		}
		return g.reviewAfterRace(w, r, rec, ev)
	}
	if !g.cfg.IsAPI(r) && (rec.Method == http.MethodGet || rec.Method == http.MethodHead) {
		// Resumed by a pass, as after a challenge: spend here.
		if e := g.consumeReview(ctx, rec); e != nil {
			if errors.Is(e, ErrAlreadyUsed) {
				return g.reviewAfterRace(w, r, rec, ev)
			}
			return e
		}
		if st == nil {
			st = g.loadSession(r, user)
		}
		if e := g.resumeGet(w, r, st, rec); e != nil {
			return e
		}
		g.emit(ctx, *ev, EventReplay, "review pass")
		return nil
	}
	if e := g.replay(w, r, root, nil, nil, rec, ""); e != nil {
		return e
	}
	return nil
}

// reviewAfterRace answers a visit that lost the park to another one (a
// concurrent visit, a webhook's rejection): what that one left.
func (g *Guard) reviewAfterRace(w http.ResponseWriter, r *http.Request, rec *Record, ev *Event) *Error {
	rec.Consumed = true
	return g.reviewDone(w, r, rec, ev)
}

// reviewDone answers a visit of a review that already ran or was ended:
// the kept answer, the rejection, or a plain "already carried out".
func (g *Guard) reviewDone(w http.ResponseWriter, r *http.Request, rec *Record, ev *Event) *Error {
	ctx := r.Context()
	out, err := g.cfg.Store.Get(ctx, outcomeID(rec.ID))
	if err == nil && out.Kind == KindOutcome && out.Header.Get(reviewEndedHeader) != "" {
		return errReviewRejected(errors.New("ended before"))
	}
	kept := g.keptOutcome(ctx, rec)
	if kept == nil {
		return refusal(http.StatusConflict, "already_used",
			"This request was already carried out after its review. It was not run again.", ErrAlreadyUsed)
	}
	g.emit(ctx, *ev, EventRefuse, "review: kept outcome shown")
	w.Header().Set("Cache-Control", "no-store")
	writeOutcome(w, kept)
	return nil
}

// sameSession compares a review park's session (never empty: parkReview
// refuses to park without one) with the visitor's, in constant time.
func sameSession(parked, live string) bool {
	return subtle.ConstantTimeCompare([]byte(parked), []byte(live)) == 1
}

// reviewStateOf learns the state of the review rec: a webhook's decision
// in the Store, else Authsignal's get action when this instance did not
// ask about this park within ReviewPoll. Anything it cannot learn is
// pending.
func (g *Guard) reviewStateOf(ctx context.Context, rec *Record) reviewState {
	// Only decide writes under decisionID, and a record opens only under
	// the id, kind and park it was sealed with: what opens is its decision.
	d, err := g.cfg.Store.Get(ctx, decisionID(rec.ID))
	if err == nil && d.Status == decisionApproved {
		return reviewApproved
	}
	getter, ok := g.cfg.Provider.(ActionGetter)
	if !ok || !g.polls.allow(rec.ID, g.now(), g.cfg.ReviewPoll) {
		return reviewPending
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.ProviderTimeout)
	a, err := getter.GetAction(ctx, rec.UserID, rec.Action, rec.ID)
	cancel()
	if err != nil || a == nil {
		return reviewPending // asked again at a later visit
	}
	return stateOfReview(a.State)
}

// stateOfReview maps an action's state to the review's: REVIEW_SUCCEEDED
// approves, REVIEW_REQUIRED (and an empty or unknown state) waits, any
// other settled state ends it.
func stateOfReview(s authsignal.State) reviewState {
	switch {
	case s == authsignal.StateReviewSucceeded:
		return reviewApproved
	case s == authsignal.StateReviewRequired || !s.Known():
		return reviewPending
	}
	return reviewRejected
}

// consumeReview spends the review park rec: of any number of visits,
// deliveries and instances, exactly one gets it. Its slot in the review
// count is given back.
func (g *Guard) consumeReview(ctx context.Context, rec *Record) *Error {
	if _, err := g.cfg.Store.Consume(ctx, rec.ID); errors.Is(err, ErrConsumed) || errors.Is(err, ErrNotFound) {
		return errUsed()
	} else if err != nil {
		return errBusy(err)
	}
	_ = g.limiter.Release(ctx, Slot{ID: rec.ID, User: rec.UserID, Session: rec.Session, Bucket: reviewBucket})
	return nil
}

// endReview ends the review park rec without running it: consumed, with a
// kept outcome marking the rejection. It returns errUsed when it had
// already run or been ended, errBusy when the store failed.
func (g *Guard) endReview(ctx context.Context, rec *Record) *Error {
	if e := g.consumeReview(ctx, rec); e != nil {
		return e
	}
	_ = g.cfg.Store.Put(ctx, &Record{ID: outcomeID(rec.ID), Kind: KindOutcome, Status: http.StatusForbidden,
		Header: http.Header{reviewEndedHeader: {"rejected"}}, Created: g.now(), Expires: rec.Expires, Park: rec.ID})
	return nil
}

// spendReview spends a review's replay when it reaches its route.
func (g *Guard) spendReview(ctx context.Context, m *replayMark) *Error {
	if e := g.consumeReview(ctx, m.rec); e != nil {
		return e
	}
	m.spent.Store(true)
	return nil
}

// pollLimiter remembers, in this process, when the guard last asked the
// provider about each review park, so that a status URL visited (or
// polled) often asks at most once per interval per park and instance. It
// holds at most maxPolls parks; when full, a new park waits for room: its
// visit answers pending without asking.
type pollLimiter struct {
	mu   sync.Mutex
	last map[string]time.Time
}

const maxPolls = 1 << 16

func (p *pollLimiter) allow(id string, now time.Time, every time.Duration) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.last == nil {
		p.last = map[string]time.Time{}
	}
	if t, ok := p.last[id]; ok && now.Sub(t) < every {
		return false
	}
	if _, ok := p.last[id]; !ok && len(p.last) >= maxPolls {
		for k, t := range p.last {
			if now.Sub(t) >= every {
				delete(p.last, k)
			}
		}
		if len(p.last) >= maxPolls {
			return false
		}
	}
	p.last[id] = now
	return true
}
