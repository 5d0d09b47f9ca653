package stepup

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// Require protects one handler with action, whatever the route. It panics
// on an invalid action code or option, as a route registration would: the
// mistake shows at start-up.
func (g *Guard) Require(action string, opts ...RequireOption) func(http.Handler) http.Handler {
	rl, err := g.NewRule(action, opts...)
	if err != nil {
		panic(err)
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := g.Enforce(w, r, rl, next); err != nil {
				g.writeError(w, r, err)
			}
		})
	}
}

// RequireOption adjusts the policy that Require builds.
type RequireOption func(*Policy)

// WithRemember sets Policy.Remember: a passed step-up lets the same user
// through this action for d without another challenge.
func WithRemember(d time.Duration) RequireOption { return func(p *Policy) { p.Remember = d } }

// WithReview sets Policy.Review: a REVIEW_REQUIRED answer parks the
// request for d, until a reviewer approves or rejects it, instead of
// refusing it.
func WithReview(d time.Duration) RequireOption { return func(p *Policy) { p.Review = d } }

// WithAttributes sets Policy.Attributes.
func WithAttributes(a ...Attribute) RequireOption {
	return func(p *Policy) { p.Attributes = append(p.Attributes, a...) }
}

// WithCustom sets Policy.Custom.
func WithCustom(f func(r *http.Request, body []byte) (map[string]any, error)) RequireOption {
	return func(p *Policy) { p.Custom = f }
}

// WithUnenrolled sets Policy.Unenrolled: UnenrolledDeny (the default),
// UnenrolledEnroll or UnenrolledAllow. Require panics on any other value.
func WithUnenrolled(choice string) RequireOption { return func(p *Policy) { p.Unenrolled = choice } }

// WithMethods sets Policy.Methods: the verification methods the action
// accepts, such as MethodPasskey. Require panics on an unknown name.
func WithMethods(methods ...string) RequireOption {
	return func(p *Policy) { p.Methods = append(p.Methods, methods...) }
}

// WithFailOpen sets Policy.FailOpen: the request goes on when the provider
// fails. Use it only where availability matters more than the step-up.
func WithFailOpen() RequireOption { return func(p *Policy) { p.FailOpen = true } }

// Middleware protects the routes of the policy table. next should be the
// application's *http.ServeMux (or anything with its Handler method): the
// rule is chosen from the pattern the mux itself matches for the request,
// never from a second parse of the path. For any other handler the
// request's Pattern is used, as a ServeMux in front sets it
// (mux.Handle("POST /transfer", guard.Middleware(h))). A request that
// reaches neither, such as guard.Middleware(logging(mux)), is refused with
// a 500 (ErrMisconfigured) while the table is not empty: the guard cannot
// tell which route it is, so it protects nothing unless it refuses.
//
// In front of a *http.ServeMux, a request whose first path segment no
// protected route has goes straight to the mux; any other request is
// matched twice (once for the rule, once by the mux to serve it). Register
// the routes on NewServeMux instead to have unprotected requests never
// reach the guard.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(interface {
		Handler(*http.Request) (http.Handler, string)
	})
	// Only for a ServeMux are its matching rules known (mayBeProtected).
	_, std := next.(*http.ServeMux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.rules.empty() {
			next.ServeHTTP(w, r)
			return
		}
		pattern := r.Pattern
		if mux == nil && pattern == "" {
			g.writeError(w, r, g.Misconfigured(r, fmt.Sprintf("Guard.Middleware wraps a %T, which is not a router, "+
				"and no router in front set the request's Pattern: wrap the *http.ServeMux itself "+
				"(logging(guard.Middleware(mux)), not guard.Middleware(logging(mux))), or protect routes one by one with Require", next)))
			return
		}
		if mux != nil {
			if std && !g.mayBeProtected(r) {
				next.ServeHTTP(w, r)
				return
			}
			if ep := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(ep) != ep {
				// The mux answers an unclean path with a redirect to the
				// clean one and runs no handler; the guard decides then.
				next.ServeHTTP(w, r)
				return
			}
			_, pattern = mux.Handler(r)
		}
		rl := lookupPattern(&g.rules, pattern, r.Method)
		if rl == nil {
			next.ServeHTTP(w, r)
			return
		}
		if _, route := splitPattern(pattern, r.Method); mux != nil && r.Pattern == "" && strings.Contains(route, "{") {
			r = withPathValues(r, route) // mux.Handler does not set them
		}
		if err := g.Enforce(w, r, Rule{rl}, next); err != nil {
			g.writeError(w, r, err)
		}
	})
}

// lookupPattern returns the rule of t for a request of method that the
// mux dispatched to pattern, or nil.
func lookupPattern(t *table, pattern, method string) *rule {
	m, route := splitPattern(pattern, method)
	if method == http.MethodHead && m == http.MethodGet {
		m = http.MethodHead // a HEAD policy first, then the GET one
	}
	return t.lookup(m, route)
}

// mayBeProtected is false for a request that no protected pattern can
// match, so that Middleware leaves it to the mux without asking it for
// its match first. A ServeMux matches a pattern's literal segments
// against the request's unescaped path segments; a pattern whose first
// segment is a literal without '%' (which a pattern may use to spell a
// '/' inside a segment) matches only requests whose decoded path
// (URL.Path) has that same first segment. When some protected route starts
// with a wildcard, is "/", or has a '%' in its first segment, every
// request may be protected (firstSegments is nil). The decision itself
// always comes from the mux's own match: this only skips asking.
func (g *Guard) mayBeProtected(r *http.Request) bool {
	p := r.URL.Path
	if g.firstSegments == nil || r.Method == http.MethodConnect || p == "" || p[0] != '/' {
		return true
	}
	seg := p[1:]
	if i := strings.IndexByte(seg, '/'); i >= 0 {
		seg = seg[:i]
	}
	return g.firstSegments[seg]
}

// firstSegments returns the first path segments of the routes of t, or nil
// when one of them can match any first segment (see mayBeProtected).
func firstSegments(t table) map[string]bool {
	out := map[string]bool{}
	for k := range t.keys() {
		seg := strings.TrimPrefix(k.route, "/")
		if i := strings.IndexByte(seg, '/'); i >= 0 {
			seg = seg[:i]
		}
		if seg == "" || strings.ContainsAny(seg, "{}%*:") {
			return nil
		}
		out[seg] = true
	}
	return out
}

// Rule is a compiled policy, as the adapters hand it to Enforce.
//
// For router adapters; an application does not need it.
type Rule struct{ r *rule }

// Policy returns the policy the rule was compiled from.
func (r Rule) Policy() Policy { return clonePolicies([]Policy{r.r.Policy})[0] }

// Match returns the rule for the method the router dispatched and the
// route pattern it matched, and false when the route is not protected.
// It does not allocate.
//
// For router adapters; an application does not need it.
func (g *Guard) Match(method, route string) (Rule, bool) {
	r := g.rules.lookup(method, route)
	return Rule{r}, r != nil
}

// SplitMethods sorts the methods one handler is registered for at route
// into those a policy protects and those none does, each in order. A route
// checker reports a handler with both, which runs unprotected for the open
// methods (an Any or Match route under a single-method policy).
//
// For route checkers of router adapters; an application does not need it.
func (g *Guard) SplitMethods(route string, methods []string) (protected, open []string) {
	for _, m := range methods {
		if _, ok := g.Match(m, route); ok {
			protected = append(protected, m)
		} else {
			open = append(open, m)
		}
	}
	slices.Sort(protected)
	slices.Sort(open)
	return protected, open
}

// NewRule builds a rule for action outside the policy table, for
// per-route protection.
//
// For router adapters; an application does not need it.
func (g *Guard) NewRule(action string, opts ...RequireOption) (Rule, error) {
	p := Policy{Method: "*", Route: "/", Action: action}
	for _, o := range opts {
		o(&p)
	}
	r, err := p.compile()
	if err != nil {
		return Rule{}, fmt.Errorf("stepup: require %q: %w", action, err)
	}
	return Rule{r}, nil
}

// Enforce runs the step-up pipeline for one request that rule protects:
// user → replay / token / pass / grant → body → track → act. When the
// request may go on, next serves it and Enforce returns nil; it also
// returns nil after answering with a challenge. A refusal is reported
// (Config.OnEvent, the log) and returned as *Error, unwritten, for the
// caller's error handling.
//
// For router adapters; an application does not need it.
func (g *Guard) Enforce(w http.ResponseWriter, r *http.Request, rule Rule, next http.Handler) error {
	rl := rule.r
	if rl == nil {
		return internalError(errors.New("zero Rule"))
	}
	ev := Event{Action: rl.Action, Method: r.Method, Route: rl.Route, Path: r.URL.Path}
	if e := g.enforce(w, r, rl, next, &ev); e != nil {
		g.report(r.Context(), ev, e)
		g.retryAfter(w, e)
		return e
	}
	return nil
}

// retryAfter adds Retry-After to a 503 refusal.
func (g *Guard) retryAfter(w http.ResponseWriter, e *Error) {
	if e.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(int((g.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
}

// enforce decides, and either serves the request with next, answers with a
// challenge, or returns the refusal. It reports every decision but a
// refusal, and fills in ev (user, state) for the refusal Enforce reports.
func (g *Guard) enforce(w http.ResponseWriter, r *http.Request, rl *rule, next http.Handler, ev *Event) *Error {
	ctx := r.Context()
	user, err := g.cfg.UserID(r)
	if err != nil {
		return internalError(fmt.Errorf("UserID: %w", err))
	}
	if user == "" {
		return errNotLoggedIn()
	}
	ev.UserID = user

	if m, ok := ctx.Value(replayKey{}).(*replayMark); ok {
		if m.rec.Action == rl.Action && m.rec.UserID == user && m.rec.Method == r.Method &&
			m.rec.Path == r.URL.EscapedPath() && m.used.CompareAndSwap(false, true) {
			if !rl.methods.accepts(m.rec.VerificationMethod) {
				return errWrongMethod(m.rec.VerificationMethod, rl.Methods) // nothing spent, nothing runs
			}
			// The parked bytes, whatever middleware in front read of them,
			// and only when the replay presents what the rules judged.
			how, reason := HowChallenge, "callback"
			if m.rec.Kind == KindReview {
				how, reason = HowReview, "review"
			}
			r2, v := withVerification(r, rl.Action, user, how, nil, true, m.rec.Body)
			attrs, e := rl.judge(r2, m.rec.Body, m.rec.Judged)
			if e != nil {
				return e // nothing spent, nothing runs
			}
			if e := g.spendReplay(ctx, m); e != nil {
				return e
			}
			g.emit(ctx, *ev, EventReplay, reason)
			v.v.Attributes, v.ready = attrs, true
			next.ServeHTTP(w, r2)
			return nil
		}
	}
	if tok := r.Header.Get(TokenHeader); tok != "" {
		r2, e := g.redeemToken(w, r, rl, user, tok)
		if e != nil {
			return e
		}
		g.emit(ctx, *ev, EventReplay, "token")
		next.ServeHTTP(w, r2)
		return nil
	}

	var st *sessionState
	var body []byte
	read := false
	if r.Method == http.MethodGet || r.Method == http.MethodHead || rl.Remember > 0 {
		st = g.loadSession(r, user)
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			// A pass opens only what was judged, the body included.
			var e *Error
			if body, e = g.readBody(r); e != nil {
				return e
			}
			read = true
		}
		if how, attrs := g.usePassOrGrant(r, st, rl, user, body); how != "" {
			if err := g.saveSession(w, r, st); err != nil {
				return internalError(err)
			}
			g.emit(ctx, *ev, EventAllow, string(how))
			next.ServeHTTP(w, verified(r, rl.Action, user, how, attrs, read && hasBody(r), body))
			return nil
		}
	}

	if !read {
		var e *Error
		if body, e = g.readBody(r); e != nil {
			return e
		}
	}
	custom, err := rl.attributes(r, body)
	if err != nil {
		return errUncheckable(err)
	}
	if e := g.checkHeaders(r.Header, rl); e != nil {
		return e
	}
	// A challenge parks the request's target to resume it: a target that
	// could not be resumed is refused before anything is counted or tracked.
	if !safePath(r.URL.EscapedPath()) || !safeQuery(r.URL.RawQuery) {
		return errUnresumable()
	}
	// Both challenge caps are checked, and a slot taken, before the
	// provider is asked: concurrent requests cannot get past them.
	// Without Config.SessionID the session is the guard's own; a request
	// without its cookie (or whose session has no id yet) has none yet:
	// the slot is counted for the id its session gets should the request
	// open a challenge (openChallenge gives it), in the same step as for
	// the user. A guard session established for the user counts in a
	// bucket of its own (capBucket).
	if st == nil && hasCookie(r, g.cfg.SessionName) {
		st = g.loadSession(r, user)
	}
	sid := g.capSession(r, st)
	if sid == "" && g.cfg.SessionID == nil {
		sid = newID()
	}
	parkID := newID()
	slot, noSlot := g.reserveIn(w, r, capBucket(kindStepUp, st.established(g.now())), parkID, user, sid)
	if noSlot != nil && !isStoreFault(noSlot.Err) {
		return noSlot // a cap is reached
	}
	// A counter that cannot answer stops only what needs it (outage.go):
	// without a slot no challenge opens, but what the provider allows runs.
	resp, err := g.track(r, rl, user, parkID, custom)
	if noSlot == nil && (err != nil || !rl.opensChallenge(resp)) {
		_ = g.limiter.Release(ctx, slot) // no challenge was opened; a slot not given back expires
	}
	if err != nil {
		if e := g.misconfiguredProvider(err); e != nil {
			return e
		}
		if rl.FailOpen {
			ev.Err = err
			g.emit(ctx, *ev, EventFailOpen, "provider failed; policy fails open")
			next.ServeHTTP(w, verified(r, rl.Action, user, HowFailOpen, custom, hasBody(r), body))
			return nil
		}
		return providerError(err)
	}
	ev.State = resp.State
	if noSlot != nil && rl.opensChallenge(resp) {
		return noSlot // a challenge needs the counter (and the store): 503
	}
	switch resp.State {
	case authsignal.StateAllow:
		if !resp.IsEnrolled {
			// No second factor: Policy.Unenrolled decides (unenrolled.go).
			if rl.Unenrolled == UnenrolledEnroll {
				return g.openChallenge(w, r, rl, user, parkID, resp, body, custom, st, sid, slot, ev)
			}
			if e := g.allowUnenrolled(ctx, rl, ev); e != nil {
				return e
			}
			next.ServeHTTP(w, verified(r, rl.Action, user, HowUnenrolled, custom, hasBody(r), body))
			return nil
		}
		aev := *ev
		if noSlot != nil {
			aev.Err = noSlot.Err // allowed while the counter is down: said once per interval in the log
		}
		g.emit(ctx, aev, EventAllow, string(HowAllow))
		next.ServeHTTP(w, verified(r, rl.Action, user, HowAllow, custom, hasBody(r), body))
		return nil
	case authsignal.StateBlock:
		return refusal(http.StatusForbidden, "blocked", "This action is not allowed.", ErrBlocked)
	case authsignal.StateReviewRequired:
		if rl.Review > 0 {
			return g.parkReview(w, r, rl, user, parkID, body, custom, st, ev)
		}
		return refusal(g.cfg.ReviewStatus, "review_required",
			"This action needs a review before it can go ahead; nothing was done yet.", ErrReview)
	case authsignal.StateChallengeRequired:
		return g.openChallenge(w, r, rl, user, parkID, resp, body, custom, st, sid, slot, ev)
	default: // a final state where a fresh decision was expected
		return providerError(fmt.Errorf("unexpected state %q", resp.State))
	}
}

// Verification describes the step-up behind a request that a protected
// handler is serving.
type Verification struct {
	Action string
	UserID string
	// How says how the step-up was satisfied.
	How How
	// Attributes are the custom attributes sent to Authsignal for the
	// request that was judged, as the policy read them from it. After a
	// challenge (a replay, a token retry, a GET pass) they are read again
	// from the request that runs, which the guard lets run only when they,
	// its Content-Type and the headers its header attributes read are what
	// was judged. A Remember grant is per user and action and carries none:
	// nil. A handler that acts on the same values the rules judged can read
	// them here instead of parsing the request its own way.
	Attributes map[string]any
}

// How says how the step-up behind a request was satisfied. Its values are
// stable: they appear in logs and may be stored.
type How string

// The ways a step-up is satisfied.
const (
	HowAllow      How = "allow"      // Authsignal allowed it
	HowChallenge  How = "challenge"  // replayed after a challenge
	HowToken      How = "token"      // an API retry with a token
	HowPass       How = "pass"       // the GET after a challenge
	HowRemembered How = "remembered" // a Remember grant
	HowFailOpen   How = "fail_open"  // the provider failed and the policy fails open
	HowUnenrolled How = "unenrolled" // Authsignal allowed a user with no second factor; Policy.Unenrolled is UnenrolledAllow
	HowReview     How = "review"     // replayed after a reviewer approved it (Policy.Review)
)

type verificationKey struct{}

// verification is what the request's context holds: ready is false while
// the attributes of a replay are still being read.
type verification struct {
	v     Verification
	ready bool
}

// VerificationFrom returns the step-up a protected handler runs under.
func VerificationFrom(ctx context.Context) (Verification, bool) {
	p, ok := ctx.Value(verificationKey{}).(*verification)
	if !ok || !p.ready {
		return Verification{}, false
	}
	return p.v, true
}

// verified returns the request a protected handler serves: one copy of r
// carrying the verification and, with setBody, body as its body.
func verified(r *http.Request, action, user string, how How, attrs map[string]any, setBody bool, body []byte) *http.Request {
	r2, v := withVerification(r, action, user, how, attrs, setBody, body)
	v.ready = true
	return r2
}

// withVerification is verified with the verification not yet ready, for
// the caller to finish.
func withVerification(r *http.Request, action, user string, how How, attrs map[string]any, setBody bool,
	body []byte) (*http.Request, *verification) {
	vc := &verifiedContext{Context: r.Context(), v: verification{v: Verification{Action: action, UserID: user, How: how,
		Attributes: attrs}}}
	r2 := r.WithContext(vc)
	if setBody {
		vc.body.Reset(body)
		r2.Body, r2.ContentLength = &vc.body, int64(len(body))
	}
	return r2, &vc.v
}

// verifiedContext is a protected handler's context: the request's,
// carrying the verification under verificationKey as context.WithValue
// would, in one allocation with the handler's body reader.
type verifiedContext struct {
	context.Context
	v    verification
	body bodyReader
}

// Value returns the verification for verificationKey, and the request
// context's value for any other key.
func (c *verifiedContext) Value(key any) any {
	if _, ok := key.(verificationKey); ok {
		return &c.v
	}
	return c.Context.Value(key)
}
