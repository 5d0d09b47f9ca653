package stepup

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup/authsignal"
)

// TokenHeader is the request header an API client uses to resend a
// request together with the token of the challenge it completed.
const TokenHeader = "Step-Up-Token"

// Provider is what the guard needs from Authsignal. *authsignal.Client
// implements it; tests may use the emulator through the same client.
//
// A Provider that also has a method Err() error, as *authsignal.Client
// does, is asked once by New: a non-nil answer (a missing secret key, an
// invalid base URL) makes New fail, rather than every protected request
// answer 503.
type Provider interface {
	Track(ctx context.Context, userID, action string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error)
	Validate(ctx context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error)
}

var _ Provider = (*authsignal.Client)(nil)

// Config configures a Guard. New applies the defaults to a copy and checks
// it; a Guard never changes after New.
type Config struct {
	// Provider is the Authsignal client. Required.
	Provider Provider
	// Sessions stores the guard's small session (ids and expiry times).
	// Any gorilla/sessions Store. Required. The guard sets the options of
	// its own session whatever the Store's defaults: Path "/", HttpOnly,
	// SameSite=Lax (its cookie must come back on the top-level redirect
	// from the challenge page; Strict would not), Secure when CallbackURL
	// is https, and a MaxAge no longer than the longest record it points
	// to (the cookie is deleted when it holds nothing).
	Sessions sessions.Store
	// UserID returns the logged-in user's id, or "" when nobody is logged
	// in. An error refuses the request with a 500. Required.
	UserID func(r *http.Request) (string, error)
	// CallbackURL is the absolute URL at which Callback is mounted.
	// Required.
	CallbackURL string

	// Policies is the declarative table used by Middleware and the
	// adapters. Optional.
	Policies []Policy
	// Store keeps parked requests, passes, grants and spent tokens.
	// Optional. Default NewMemoryStore().
	Store Store
	// SessionName is the gorilla session name the guard uses. Optional.
	// Default "stepup".
	SessionName string
	// MaxBodyBytes caps the body of a protected request. Optional. Default
	// 64 KiB.
	MaxBodyBytes int64
	// MaxHeaderValues and MaxHeaderBytes cap the request headers a parked
	// request keeps for its replay (the allow-list and ReplayHeaders): the
	// number of values, and the sum of name and value lengths over them. A
	// protected request over either cap is refused with 431 before anything
	// is tracked or parked, as an oversized body is. Optional. Defaults 32
	// values and 8 KiB.
	MaxHeaderValues int
	MaxHeaderBytes  int
	// ParkTTL is how long a parked request waits for its callback.
	// Optional. Default 10 minutes, the lifetime of an Authsignal token.
	ParkTTL time.Duration
	// MaxPending is how many parked requests one session may hold; the
	// oldest is dropped beyond it. Optional. Default 5, at most 20.
	MaxPending int
	// MaxChallengesPerUser caps the challenges (browser parks and API
	// challenges) one user may open per ParkTTL in this process, so that one
	// account cannot fill the Store for everybody; beyond it the answer is
	// 429 with Retry-After. Optional. Default 20.
	MaxChallengesPerUser int
	// MaxChallengesPerSession caps the challenges one session of a user
	// may open per ParkTTL, well below MaxChallengesPerUser, so that a
	// stolen session cannot use up the user's cap and lock the real user
	// out. Both caps are checked before tracking: a request beyond either
	// is refused with 429 and nothing is tracked. Optional. Default 5 (or
	// MaxChallengesPerUser when lower), at most MaxChallengesPerUser.
	MaxChallengesPerSession int
	// SessionID returns the id of the application's login session, which
	// MaxChallengesPerSession counts by. Optional. Default: an id the guard
	// keeps in its own session (SessionName). A client can drop that cookie
	// and start a new guard session at every request, so that only
	// MaxChallengesPerUser holds; set SessionID for a real per-session cap.
	// "" means no session: only the per-user cap applies.
	SessionID func(r *http.Request) string
	// PassTTL is how long the single-use pass for a resumed GET lasts.
	// Optional. Default 1 minute, at most 1 minute.
	PassTTL time.Duration
	// ProviderTimeout bounds every call to the provider. Optional.
	// Default 5 seconds.
	ProviderTimeout time.Duration
	// RetryAfter is the Retry-After sent with a 503 when the provider
	// fails. Optional. Default 5 seconds.
	RetryAfter time.Duration
	// ReviewStatus is the status for REVIEW_REQUIRED. Optional. Default 403.
	ReviewStatus int
	// ChallengeOrigins lists where the guard may send a browser for a
	// challenge: "scheme://host[:port]", with an optional "*." host prefix.
	// A challenge URL elsewhere is treated as a provider failure. Optional.
	// Default "https://authsignal.com" and "https://*.authsignal.com". Set
	// it to the emulator's URL in development.
	ChallengeOrigins []string
	// IsAPI tells API and XHR requests (401 with a challenge) from browser
	// navigations (303 to the challenge). Optional. Default: a request is
	// a browser navigation when Sec-Fetch-Mode is "navigate", or when it
	// has no X-Requested-With and its Accept header lists text/html.
	IsAPI func(r *http.Request) bool
	// ReplayHeaders are extra request headers kept with a parked request
	// and replayed, beyond the built-in allow-list. Optional.
	ReplayHeaders []string
	// TrustedProxies are the proxies whose X-Forwarded-For is believed when
	// reporting the client IP to Authsignal. Optional. Default none: the
	// connection's remote address is used.
	TrustedProxies []netip.Prefix
	// DeviceID returns a stable device identifier for risk rules. Optional.
	DeviceID func(r *http.Request) string
	// ErrorHandler writes refusals. err is an *Error. Optional. Default: a
	// short JSON body for API requests, a plain HTML page for browsers.
	ErrorHandler func(w http.ResponseWriter, r *http.Request, err error)
	// OnEvent is called for every decision. It must not block. Optional.
	OnEvent func(ctx context.Context, ev Event)
	// Logger receives one line per decision, never a token, body, cookie
	// or key. Optional. Default: slog.Default() receives the decisions at
	// level Warn and above (refusals other than "not logged in", blocks,
	// reviews, fail-opens; provider, store and wiring failures at Error),
	// so that a guard refusing everything is never silent.
	Logger *slog.Logger
	// Now is the clock. Optional. Default time.Now.
	Now func() time.Time
}

// Guard puts step-up authentication in front of routes. It is safe for
// concurrent use and immutable after New.
type Guard struct {
	cfg           Config
	rules         table
	callback      *url.URL
	origins       []origin
	replayHeaders map[string]bool
	tooLarge      Error // the 413 answer, built once
	limiter       *parkLimiter
}

// New checks cfg, applies the defaults and compiles the policy table.
func New(cfg Config) (*Guard, error) {
	if cfg.Provider == nil {
		return nil, errors.New("stepup: Config.Provider is required")
	}
	if p, ok := cfg.Provider.(interface{ Err() error }); ok {
		if err := p.Err(); err != nil {
			return nil, fmt.Errorf("stepup: Config.Provider cannot work: %w", err)
		}
	}
	if cfg.Sessions == nil {
		return nil, errors.New("stepup: Config.Sessions is required")
	}
	if cfg.UserID == nil {
		return nil, errors.New("stepup: Config.UserID is required")
	}
	cb, err := url.Parse(cfg.CallbackURL)
	if err != nil || (cb.Scheme != "https" && cb.Scheme != "http") || cb.Host == "" || cb.User != nil || cb.Fragment != "" {
		return nil, fmt.Errorf("stepup: Config.CallbackURL %q must be an absolute http(s) URL", cfg.CallbackURL)
	}
	rules, err := compileTable(cfg.Policies)
	if err != nil {
		return nil, err
	}
	if cfg.Store == nil {
		cfg.Store = NewMemoryStore()
	}
	if cfg.SessionName == "" {
		cfg.SessionName = "stepup"
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 64 << 10
	}
	if cfg.ParkTTL == 0 {
		cfg.ParkTTL = 10 * time.Minute
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 5
	}
	if cfg.MaxChallengesPerUser == 0 {
		cfg.MaxChallengesPerUser = 20
	}
	if cfg.MaxChallengesPerSession == 0 {
		cfg.MaxChallengesPerSession = min(5, cfg.MaxChallengesPerUser)
	}
	if cfg.MaxHeaderValues == 0 {
		cfg.MaxHeaderValues = 32
	}
	if cfg.MaxHeaderBytes == 0 {
		cfg.MaxHeaderBytes = 8 << 10
	}
	if cfg.PassTTL == 0 {
		cfg.PassTTL = time.Minute
	}
	if cfg.ProviderTimeout == 0 {
		cfg.ProviderTimeout = 5 * time.Second
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.ReviewStatus == 0 {
		cfg.ReviewStatus = http.StatusForbidden
	}
	if cfg.ChallengeOrigins == nil {
		cfg.ChallengeOrigins = []string{"https://authsignal.com", "https://*.authsignal.com"}
	}
	if cfg.IsAPI == nil {
		cfg.IsAPI = defaultIsAPI
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.MaxBodyBytes < 0:
		return nil, errors.New("stepup: Config.MaxBodyBytes must be positive")
	case cfg.ParkTTL < 0:
		return nil, errors.New("stepup: Config.ParkTTL must be positive")
	case cfg.MaxPending < 0 || cfg.MaxPending > 20:
		return nil, errors.New("stepup: Config.MaxPending must be between 1 and 20")
	case cfg.MaxChallengesPerUser < 0:
		return nil, errors.New("stepup: Config.MaxChallengesPerUser must be positive")
	case cfg.MaxChallengesPerSession < 0 || cfg.MaxChallengesPerSession > cfg.MaxChallengesPerUser:
		return nil, errors.New("stepup: Config.MaxChallengesPerSession must be between 1 and MaxChallengesPerUser")
	case cfg.MaxHeaderValues < 0 || cfg.MaxHeaderBytes < 0:
		return nil, errors.New("stepup: Config.MaxHeaderValues and MaxHeaderBytes must be positive")
	case cfg.PassTTL < 0 || cfg.PassTTL > time.Minute:
		return nil, errors.New("stepup: Config.PassTTL must be positive and at most a minute")
	case cfg.ProviderTimeout < 0 || cfg.RetryAfter < 0:
		return nil, errors.New("stepup: Config.ProviderTimeout and RetryAfter must be positive")
	case cfg.ReviewStatus < 400 || cfg.ReviewStatus > 599:
		return nil, errors.New("stepup: Config.ReviewStatus must be a 4xx or 5xx status")
	}
	// Nothing the caller keeps may change the guard later.
	cfg.Policies = clonePolicies(cfg.Policies)
	cfg.TrustedProxies = append([]netip.Prefix(nil), cfg.TrustedProxies...)
	cfg.ChallengeOrigins = append([]string(nil), cfg.ChallengeOrigins...)
	cfg.ReplayHeaders = append([]string(nil), cfg.ReplayHeaders...)
	g := &Guard{cfg: cfg, rules: rules, callback: cb, replayHeaders: map[string]bool{},
		limiter: newParkLimiter(cfg.MaxChallengesPerUser, cfg.MaxChallengesPerSession, cfg.ParkTTL)}
	for _, o := range cfg.ChallengeOrigins {
		po, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		g.origins = append(g.origins, po)
	}
	g.tooLarge = *refuse(http.StatusRequestEntityTooLarge, "body_too_large",
		fmt.Sprintf("This request is larger than the %d bytes that can be held while you verify.", cfg.MaxBodyBytes), ErrBodyTooLarge)
	for _, h := range defaultReplayHeaders {
		g.replayHeaders[http.CanonicalHeaderKey(h)] = true
	}
	for _, h := range cfg.ReplayHeaders {
		k := http.CanonicalHeaderKey(h)
		if neverReplay[k] || strings.HasPrefix(k, "X-Forwarded-") {
			return nil, fmt.Errorf("stepup: Config.ReplayHeaders: %s is never replayed", k)
		}
		g.replayHeaders[k] = true
	}
	return g, nil
}

// Rule is a compiled policy, as the adapters hand it to Enforce.
type Rule struct{ r *rule }

// Policy returns the policy the rule was compiled from.
func (r Rule) Policy() Policy { return clonePolicies([]Policy{r.r.Policy})[0] }

func clonePolicies(ps []Policy) []Policy {
	out := append([]Policy(nil), ps...)
	for i := range out {
		out[i].Attributes = append([]Attribute(nil), out[i].Attributes...)
	}
	return out
}

// Match returns the rule for the method the router dispatched and the
// route pattern it matched, and false when the route is not protected.
// It does not allocate.
func (g *Guard) Match(method, route string) (Rule, bool) {
	r := g.rules.lookup(method, route)
	return Rule{r}, r != nil
}

// RequireOption adjusts the policy that Require builds.
type RequireOption func(*Policy)

// RememberFor sets Policy.Remember.
func RememberFor(d time.Duration) RequireOption { return func(p *Policy) { p.Remember = d } }

// WithAttributes sets Policy.Attributes.
func WithAttributes(a ...Attribute) RequireOption {
	return func(p *Policy) { p.Attributes = append(p.Attributes, a...) }
}

// WithCustom sets Policy.Custom.
func WithCustom(f func(r *http.Request, body []byte) (map[string]any, error)) RequireOption {
	return func(p *Policy) { p.Custom = f }
}

// FailOpen sets Policy.FailOpen: the request goes on when the provider
// fails. Use it only where availability matters more than the step-up.
func FailOpen() RequireOption { return func(p *Policy) { p.FailOpen = true } }

// NewRule builds a rule for action outside the policy table, for
// per-route protection.
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

// Middleware protects the routes of the policy table. next should be the
// application's *http.ServeMux (or anything with its Handler method): the
// rule is chosen from the pattern the mux itself matches for the request,
// never from a second parse of the path. For any other handler the
// request's Pattern is used, as a ServeMux in front sets it
// (mux.Handle("POST /transfer", guard.Middleware(h))). A request that
// reaches neither, such as guard.Middleware(logging(mux)), is refused with
// a 500 (ErrMisconfigured) while the table is not empty: the guard cannot
// tell which route it is, so it protects nothing unless it refuses.
func (g *Guard) Middleware(next http.Handler) http.Handler {
	mux, _ := next.(interface {
		Handler(*http.Request) (http.Handler, string)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(g.rules) == 0 {
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
			if ep := r.URL.EscapedPath(); r.Method != http.MethodConnect && cleanPath(ep) != ep {
				// The mux answers an unclean path with a redirect to the
				// clean one and runs no handler; the guard decides then.
				next.ServeHTTP(w, r)
				return
			}
			_, pattern = mux.Handler(r)
		}
		method, route := splitPattern(pattern, r.Method)
		if r.Method == http.MethodHead && method == http.MethodGet {
			method = http.MethodHead // a HEAD policy first, then the GET one
		}
		rl := g.rules.lookup(method, route)
		if rl == nil {
			next.ServeHTTP(w, r)
			return
		}
		if mux != nil && r.Pattern == "" && strings.Contains(route, "{") {
			r = withPathValues(r, route) // mux.Handler does not set them
		}
		if err := g.Enforce(w, r, Rule{rl}, next); err != nil {
			g.writeError(w, r, err)
		}
	})
}

// cleanPath is net/http's: the path the ServeMux redirects an unclean
// request path to.
func cleanPath(p string) string {
	if p == "" {
		return "/"
	}
	if p[0] != '/' {
		p = "/" + p
	}
	np := path.Clean(p)
	if p[len(p)-1] == '/' && np != "/" {
		np += "/"
	}
	return np
}

// withPathValues sets the wildcards of route, a pattern the mux matched
// for r, on a copy of r, so that path attributes and hooks can read them
// with PathValue. The mux already decided the match; this only copies the
// segment values out, as the mux would.
func withPathValues(r *http.Request, route string) *http.Request {
	segs := strings.Split(strings.TrimPrefix(route, "/"), "/")
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	r2 := r.WithContext(r.Context())
	for i, s := range segs {
		if i >= len(parts) || !strings.HasPrefix(s, "{") || !strings.HasSuffix(s, "}") || s == "{$}" {
			continue
		}
		name := s[1 : len(s)-1]
		raw := parts[i]
		if rest, ok := strings.CutSuffix(name, "..."); ok {
			name, raw = rest, strings.Join(parts[i:], "/")
		}
		v, err := url.PathUnescape(raw)
		if err != nil {
			continue
		}
		r2.SetPathValue(name, v)
	}
	return r2
}

// splitPattern turns a ServeMux pattern ("POST example.com/x/{id}") into
// the method it dispatches on (the request's when it has none) and its
// path.
func splitPattern(pattern, reqMethod string) (string, string) {
	if pattern == "" {
		return "", ""
	}
	method := reqMethod
	if i := strings.IndexAny(pattern, " \t"); i >= 0 {
		method = pattern[:i]
		pattern = strings.TrimLeft(pattern[i:], " \t")
	}
	if i := strings.IndexByte(pattern, '/'); i > 0 {
		pattern = pattern[i:] // drop a host
	}
	return method, pattern
}

// CheckServeMux reports policies that name a route mux does not have, or
// whose method the mux pattern does not pin down (a method-less pattern
// also dispatches other methods, which would then pass unprotected).
func (g *Guard) CheckServeMux(mux *http.ServeMux) error {
	var errs []error
	for k := range g.rules {
		methods := []string{k.method}
		if k.method == "*" {
			methods = []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}
		}
		path := samplePath(k.route)
		var err error
		for _, m := range methods {
			req := &http.Request{Method: m, URL: &url.URL{Path: path}, Host: "example.invalid", Header: http.Header{}}
			_, pattern := mux.Handler(req)
			pm, route := splitPattern(pattern, "")
			switch {
			case route != k.route:
				err = fmt.Errorf("stepup: policy %s %s: the mux routes it to %q", k.method, k.route, pattern)
			case k.method != "*" && pm == "":
				err = fmt.Errorf("stepup: policy %s %s: mux pattern %q accepts every method; register it with the method or use \"*\"", k.method, k.route, pattern)
			case k.method == http.MethodHead && pm == http.MethodGet:
				err = nil // a GET pattern serves HEAD
			case k.method != "*" && pm != k.method:
				err = fmt.Errorf("stepup: policy %s %s: the mux routes it to %q", k.method, k.route, pattern)
			default:
				err = nil
			}
			if err == nil {
				break // one method reaching the route is enough for "*"
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func samplePath(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case s == "{$}":
			segs[i] = ""
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}"):
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

// Verification describes the step-up behind a request that a protected
// handler is serving.
type Verification struct {
	Action string
	UserID string
	// How is "allow" (Authsignal allowed it), "challenge" (replayed after a
	// challenge), "token" (an API retry with a token), "pass" (the GET
	// after a challenge), "remembered" (a Remember grant) or "fail_open".
	How string
	// Attributes are the custom attributes sent to Authsignal for this
	// request, as the policy read them from it (nil for a pass or a grant).
	// A handler that acts on the same values the rules judged can read them
	// here instead of parsing the request its own way.
	Attributes map[string]any
}

type verificationKey struct{}

// VerificationFrom returns the step-up a protected handler runs under.
func VerificationFrom(ctx context.Context) (Verification, bool) {
	v, ok := ctx.Value(verificationKey{}).(Verification)
	return v, ok
}

type replayKey struct{}

// replayMark is carried by a replayed request; the first protected route
// that matches it spends token and park and runs without a new track.
type replayMark struct {
	rec    *Record
	token  string
	settle func() error // the callback's session bookkeeping, once spent
	used   atomic.Bool  // the replay reached its protected route
	spent  atomic.Bool  // token and park were spent for it
}

// Enforce runs the step-up pipeline for one request that rule protects:
// user → replay / token / pass / grant → body → track → act. When the
// request may go on, next serves it and Enforce returns nil; it also
// returns nil after answering with a challenge. Refusals are returned as
// *Error, unwritten, for the caller's error handling.
func (g *Guard) Enforce(w http.ResponseWriter, r *http.Request, rule Rule, next http.Handler) error {
	err := g.enforce(w, r, rule, next)
	if err != nil {
		g.retryAfter(w, err)
	}
	return err
}

// retryAfter adds Retry-After to a 503 refusal.
func (g *Guard) retryAfter(w http.ResponseWriter, err error) {
	var e *Error
	if errors.As(err, &e) && e.Status == http.StatusServiceUnavailable && w.Header().Get("Retry-After") == "" {
		w.Header().Set("Retry-After", strconv.Itoa(int((g.cfg.RetryAfter+time.Second-1)/time.Second)))
	}
}

func (g *Guard) enforce(w http.ResponseWriter, r *http.Request, rule Rule, next http.Handler) error {
	rl := rule.r
	if rl == nil {
		return internalError(errors.New("zero Rule"))
	}
	ev := Event{Action: rl.Action, Method: r.Method, Route: rl.Route, Path: r.URL.Path}
	user, err := g.cfg.UserID(r)
	if err != nil {
		return g.refuse(r.Context(), ev, internalError(fmt.Errorf("UserID: %w", err)))
	}
	if user == "" {
		return g.refuse(r.Context(), ev, errNotLoggedIn())
	}
	ev.UserID = user

	if m, ok := r.Context().Value(replayKey{}).(*replayMark); ok {
		if m.rec.Action == rl.Action && m.rec.UserID == user && m.rec.Method == r.Method &&
			m.rec.Path == r.URL.EscapedPath() && m.used.CompareAndSwap(false, true) {
			if err := g.spendReplay(r.Context(), m); err != nil {
				return g.refuse(r.Context(), ev, err)
			}
			g.emit(r.Context(), ev, EventReplay, "callback")
			// The parked bytes, whatever middleware in front read of them.
			r2 := r.WithContext(r.Context())
			r2.Body, r2.ContentLength = io.NopCloser(bytes.NewReader(m.rec.Body)), int64(len(m.rec.Body))
			attrs, _ := rl.attributes(r2, m.rec.Body) // the parked bytes the rules judged
			next.ServeHTTP(w, withVerification(r2, rl.Action, user, "challenge", attrs))
			return nil
		}
	}
	if tok := r.Header.Get(TokenHeader); tok != "" {
		return g.redeemToken(w, r, rl, user, tok, next, ev)
	}

	var st *sessionState
	if r.Method == http.MethodGet || r.Method == http.MethodHead || rl.Remember > 0 {
		st = g.loadSession(r, user)
		if how := g.usePassOrGrant(r, st, rl, user); how != "" {
			if err := g.saveSession(w, r, st); err != nil {
				return g.refuse(r.Context(), ev, internalError(err))
			}
			g.emit(r.Context(), ev, EventAllow, how)
			next.ServeHTTP(w, withVerification(r, rl.Action, user, how, nil))
			return nil
		}
	}

	body, rerr := g.readBody(r)
	if rerr != nil {
		return g.refuse(r.Context(), ev, rerr)
	}
	custom, err := rl.attributes(r, body)
	if err != nil {
		return g.refuse(r.Context(), ev, refuse(http.StatusBadRequest, "bad_request",
			"This request could not be checked.", fmt.Errorf("%w: attributes: %w", ErrBadRequest, err)))
	}
	if herr := g.checkHeaders(r.Header); herr != nil {
		return g.refuse(r.Context(), ev, herr)
	}
	// Both challenge caps are checked, and a slot taken, before the
	// provider is asked: concurrent requests cannot get past them.
	// Without Config.SessionID the session is the guard's own; a request
	// without its cookie has no session yet, and the challenge it may open
	// is counted for the one it gets (limiter.attach).
	sid := ""
	if g.cfg.SessionID != nil {
		sid = g.cfg.SessionID(r)
	} else if st != nil || hasCookie(r, g.cfg.SessionName) {
		if st == nil {
			st = g.loadSession(r, user)
		}
		sid = st.data.ID
	}
	slot, wait, ok := g.limiter.reserve(user, sid, g.now())
	if !ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((wait+time.Second-1)/time.Second)))
		return g.refuse(r.Context(), ev, refuse(http.StatusTooManyRequests, "too_many_challenges",
			"Too many verifications were started. Nothing was done; finish or wait for the open ones.", ErrTooManyChallenges))
	}
	parkID := newID()
	req := authsignal.TrackRequest{
		RedirectURL:    g.callbackFor(parkID),
		IPAddress:      g.clientIP(r),
		UserAgent:      r.UserAgent(),
		Custom:         custom,
		IdempotencyKey: parkID,
	}
	if g.cfg.DeviceID != nil {
		req.DeviceID = g.cfg.DeviceID(r)
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ProviderTimeout)
	resp, err := g.cfg.Provider.Track(ctx, user, rl.Action, req)
	cancel()
	if err == nil && resp == nil {
		err = errors.New("empty track response")
	}
	if err == nil && resp.State == authsignal.StateChallengeRequired {
		err = g.checkChallenge(resp, parkID)
	}
	if err == nil && !resp.State.Known() {
		err = fmt.Errorf("unknown state %q", resp.State)
	}
	if err != nil || resp.State != authsignal.StateChallengeRequired {
		g.limiter.release(slot) // no challenge was opened
	}
	if err != nil {
		if rl.FailOpen {
			ev.Err = err
			g.emit(r.Context(), ev, EventFailOpen, "provider failed; policy fails open")
			next.ServeHTTP(w, withVerification(withBody(r, body), rl.Action, user, "fail_open", custom))
			return nil
		}
		return g.refuse(r.Context(), ev, providerError(err))
	}
	ev.State = resp.State
	switch resp.State {
	case authsignal.StateAllow:
		g.emit(r.Context(), ev, EventAllow, "allow")
		next.ServeHTTP(w, withVerification(withBody(r, body), rl.Action, user, "allow", custom))
		return nil
	case authsignal.StateBlock:
		ev.Err = ErrBlocked
		g.emit(r.Context(), ev, EventBlock, "")
		return refuse(http.StatusForbidden, "blocked", "This action is not allowed.", ErrBlocked)
	case authsignal.StateReviewRequired:
		ev.Err = ErrReview
		g.emit(r.Context(), ev, EventReview, "")
		return refuse(g.cfg.ReviewStatus, "review_required",
			"This action needs a review before it can go ahead; nothing was done yet.", ErrReview)
	case authsignal.StateChallengeRequired:
		if st == nil && g.cfg.SessionID == nil {
			st = g.loadSession(r, user)
		}
		if err := g.challenge(w, r, rl, user, parkID, resp.URL, shownTokens(resp), body, st, ev); err != nil {
			g.limiter.release(slot)
			return err
		}
		if sid == "" && st != nil && st.data.ID != "" {
			g.limiter.attach(slot, st.data.ID) // the session id made for this challenge
		}
		return nil
	default: // a final state where a fresh decision was expected
		return g.refuse(r.Context(), ev, providerError(fmt.Errorf("unexpected state %q", resp.State)))
	}
}

// challenge parks the request and answers with the challenge.
func (g *Guard) challenge(w http.ResponseWriter, r *http.Request, rl *rule, user, parkID, challengeURL string,
	shown [][]byte, body []byte, st *sessionState, ev Event) error {
	now := g.now()
	api := g.cfg.IsAPI(r)
	rec := &Record{
		ID: parkID, Kind: KindPark, UserID: user, Action: rl.Action, Method: r.Method,
		Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Remember: rl.Remember, Shown: shown,
		Created: now, Expires: now.Add(g.cfg.ParkTTL),
	}
	if !safePath(rec.Path) || !safeQuery(rec.Query) {
		return g.refuse(r.Context(), ev, refuse(http.StatusBadRequest, "bad_request",
			"This address cannot be verified and resumed.", ErrBadRequest))
	}
	if api {
		rec.Kind = KindAPI
		h := sha256.Sum256(body)
		rec.BodyHash = h[:]
	} else {
		rec.Body = body
		rec.Header = g.keepHeaders(r.Header)
	}
	if err := g.cfg.Store.Put(r.Context(), rec); err != nil {
		return g.refuse(r.Context(), ev, errBusy(err))
	}
	kind := "browser"
	if api {
		kind = "api"
	}
	g.emit(r.Context(), ev, EventChallenge, kind)
	if api {
		if st != nil && g.cfg.SessionID == nil {
			// Keep the id the per-session cap counts this challenge by.
			st.opened(rec.Expires)
			_ = g.saveSession(w, r, st) // API clients may keep no cookies; the per-user cap still holds
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(
			`Bearer error="insufficient_user_authentication", error_description="Step-up authentication is required for %s", acr_values="%s"`,
			rl.Action, rl.Action))
		writeJSON(w, http.StatusUnauthorized, map[string]any{
			"error":       "insufficient_user_authentication",
			"message":     "This action needs an extra verification. Complete the challenge at url, then resend the request with the token in the " + TokenHeader + " header.",
			"action":      rl.Action,
			"url":         challengeURL,
			"tokenHeader": TokenHeader,
			"expiresIn":   int(g.cfg.ParkTTL / time.Second),
		})
		return nil
	}
	if st == nil {
		st = g.loadSession(r, user)
	}
	st.addPark(parkID, rec.Expires, g.cfg.MaxPending)
	if g.cfg.SessionID == nil {
		st.opened(rec.Expires)
	}
	if err := g.saveSession(w, r, st); err != nil {
		_ = g.cfg.Store.Delete(r.Context(), parkID)
		return g.refuse(r.Context(), ev, internalError(err))
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Location", challengeURL)
	w.WriteHeader(http.StatusSeeOther)
	return nil
}

// usePassOrGrant lets a request through on a GET pass or a Remember
// grant, consuming the pass in the store.
func (g *Guard) usePassOrGrant(r *http.Request, st *sessionState, rl *rule, user string) string {
	ctx := r.Context()
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		for _, p := range st.data.Passes {
			if p.Action != rl.Action {
				continue
			}
			rec, err := g.cfg.Store.Get(ctx, p.ID)
			if err != nil || rec.Kind != KindPass || rec.Consumed || rec.UserID != user || rec.Action != rl.Action ||
				rec.Path != r.URL.EscapedPath() || rec.Query != r.URL.RawQuery {
				continue
			}
			if _, err := g.cfg.Store.Consume(ctx, p.ID); err != nil {
				continue
			}
			st.removePass(p.ID)
			return "pass"
		}
	}
	if rl.Remember > 0 {
		now := g.now()
		for _, gr := range st.data.Grants {
			if gr.Action != rl.Action {
				continue
			}
			rec, err := g.cfg.Store.Get(ctx, gr.ID)
			if err == nil && rec.Kind == KindGrant && rec.UserID == user && rec.Action == rl.Action && now.Before(rec.Expires) {
				return "remembered"
			}
		}
	}
	return ""
}

// redeemToken serves an API retry that carries the token of a completed
// challenge: validated, bound to the recorded challenge, spent once.
func (g *Guard) redeemToken(w http.ResponseWriter, r *http.Request, rl *rule, user, token string, next http.Handler, ev Event) error {
	body, rerr := g.readBody(r)
	if rerr != nil {
		return g.refuse(r.Context(), ev, rerr)
	}
	rec, err := g.validate(r, user, rl.Action, token)
	if err != nil {
		return g.refuse(r.Context(), ev, err)
	}
	h := sha256.Sum256(body)
	if rec.Kind != KindAPI || rec.Method != r.Method || rec.Path != r.URL.EscapedPath() || rec.Query != r.URL.RawQuery ||
		!bytes.Equal(rec.BodyHash, h[:]) {
		return g.refuse(r.Context(), ev, errStepUpFailed(errors.New("retry differs from the challenged request")))
	}
	attrs, aerr := rl.attributes(r, body)
	if aerr != nil {
		return g.refuse(r.Context(), ev, refuse(http.StatusBadRequest, "bad_request",
			"This request could not be checked.", fmt.Errorf("%w: attributes: %w", ErrBadRequest, aerr)))
	}
	if err := g.spend(r.Context(), rec, token); err != nil {
		return g.refuse(r.Context(), ev, err)
	}
	if rec.Remember > 0 {
		st := g.loadSession(r, user)
		g.grant(r.Context(), st, rec)
		_ = g.saveSession(w, r, st) // API clients may have no session; the grant is then simply not kept
	}
	g.emit(r.Context(), ev, EventReplay, "token")
	next.ServeHTTP(w, withVerification(withBody(r, body), rl.Action, user, "token", attrs))
	return nil
}

// validate asks the provider about token and checks every binding against
// the record the token's idempotency key names. It does not spend anything.
func (g *Guard) validate(r *http.Request, user, action, token string) (*Record, *Error) {
	if len(token) > 8192 {
		return nil, errStepUpFailed(errors.New("token too long"))
	}
	if _, err := g.cfg.Store.Get(r.Context(), usedID(token)); err == nil {
		return nil, errUsed()
	} else if !errors.Is(err, ErrNotFound) {
		return nil, internalError(err)
	}
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.ProviderTimeout)
	vr, err := g.cfg.Provider.Validate(ctx, authsignal.ValidateRequest{Token: token, UserID: user, Action: action})
	cancel()
	if err != nil {
		return nil, providerError(err)
	}
	if vr == nil || !vr.IsValid || vr.State != authsignal.StateChallengeSucceeded ||
		vr.UserID != user || vr.Action != action || vr.IdempotencyKey == "" {
		return nil, errStepUpFailed(fmt.Errorf("validate: valid=%t state=%q", vr != nil && vr.IsValid, stateOf(vr)))
	}
	rec, err := g.cfg.Store.Get(r.Context(), vr.IdempotencyKey)
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, errStepUpFailed(errors.New("no challenge recorded for this token"))
	case err != nil:
		return nil, internalError(err)
	case rec.Consumed:
		return nil, errUsed()
	case rec.UserID != user || rec.Action != action || rec.ID != vr.IdempotencyKey:
		return nil, errStepUpFailed(errors.New("token bound to another challenge"))
	case rec.wasShown(token):
		return nil, errStepUpFailed(errors.New("token handed out with the challenge, not earned by it"))
	}
	return rec, nil
}

// maxShown bounds how many tokens of a track response a record keeps.
const maxShown = 8

// shownTokens hashes the tokens a track response hands out with the
// challenge: its token (meant for client SDKs) and every value in the
// challenge URL's query, which holds a token that whoever opens the page
// can read. They name the action, so the provider calls them valid once
// the challenge succeeded, but they prove nothing about who completed it:
// they never redeem the park.
func shownTokens(resp *authsignal.TrackResponse) [][]byte {
	var out [][]byte
	add := func(tok string) {
		if tok == "" || len(out) == maxShown {
			return
		}
		h := shownHash(tok)
		for _, o := range out {
			if bytes.Equal(o, h) {
				return
			}
		}
		out = append(out, h)
	}
	add(resp.Token)
	if u, err := url.Parse(resp.URL); err == nil {
		for _, vs := range u.Query() {
			for _, v := range vs {
				add(v)
			}
		}
	}
	return out
}

func shownHash(token string) []byte {
	h := sha256.Sum256([]byte("stepup-shown\x00" + token))
	return h[:]
}

// wasShown reports whether token is one the track response handed out.
func (r *Record) wasShown(token string) bool {
	h := shownHash(token)
	found := 0
	for _, s := range r.Shown {
		found |= subtle.ConstantTimeCompare(s, h)
	}
	return found == 1
}

func stateOf(vr *authsignal.ValidateResponse) authsignal.State {
	if vr == nil {
		return ""
	}
	return vr.State
}

// spendReplay spends a replay's token and park when it reaches its route,
// then settles the callback's session (park done, Remember grant, cookie)
// before the handler runs.
func (g *Guard) spendReplay(ctx context.Context, m *replayMark) *Error {
	if e := g.spend(ctx, m.rec, m.token); e != nil {
		return e
	}
	m.spent.Store(true)
	if err := m.settle(); err != nil {
		return internalError(err)
	}
	return nil
}

// spend records the token as used and consumes the record, atomically in
// the store: of concurrent attempts exactly one gets through.
func (g *Guard) spend(ctx context.Context, rec *Record, token string) *Error {
	now := g.now()
	err := g.cfg.Store.Put(ctx, &Record{ID: usedID(token), Kind: KindUsed, Created: now, Expires: now.Add(g.cfg.ParkTTL + time.Minute)})
	if errors.Is(err, ErrExists) {
		return errUsed()
	} else if errors.Is(err, ErrStoreFull) {
		return errBusy(err) // nothing spent: the park stays pending for another try
	} else if err != nil {
		return internalError(err)
	}
	if _, err := g.cfg.Store.Consume(ctx, rec.ID); errors.Is(err, ErrConsumed) || errors.Is(err, ErrNotFound) {
		return errUsed()
	} else if err != nil {
		return internalError(err)
	}
	return nil
}

func errUsed() *Error {
	return refuse(http.StatusConflict, "already_used",
		"This verification was already used. Nothing was done again.", ErrAlreadyUsed)
}

// grant gives a Remember grant for rec's action, with a fixed expiry.
func (g *Guard) grant(ctx context.Context, st *sessionState, rec *Record) {
	now := g.now()
	id := newID()
	gr := &Record{ID: id, Kind: KindGrant, UserID: rec.UserID, Action: rec.Action, Created: now, Expires: now.Add(rec.Remember)}
	if g.cfg.Store.Put(ctx, gr) == nil {
		st.addGrant(id, rec.Action, gr.Expires)
	}
}

var defaultReplayHeaders = []string{
	"Content-Type", "Accept", "Accept-Language", "Origin", "Referer",
	"Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User",
	"X-Requested-With", "X-CSRF-Token", "X-XSRF-Token", "Idempotency-Key",
}

var neverReplay = map[string]bool{
	"Authorization": true, "Proxy-Authorization": true, "Cookie": true, "Host": true,
	"Content-Length": true, "Transfer-Encoding": true, "Content-Encoding": true, "Connection": true,
	"Keep-Alive": true, "Te": true, "Trailer": true, "Upgrade": true, "Proxy-Connection": true,
	"Forwarded": true, "X-Real-Ip": true, "X-Http-Method-Override": true, "X-Http-Method": true,
	"X-Method-Override": true, "X-Original-Url": true, "X-Rewrite-Url": true, "X-Url-Scheme": true, TokenHeader: true,
}

func (g *Guard) keepHeaders(h http.Header) http.Header {
	out := http.Header{}
	for k, vs := range h {
		if g.replayHeaders[k] && !neverReplay[k] {
			out[k] = append([]string(nil), vs...)
		}
	}
	return out
}

// checkHeaders refuses with 431 a request whose headers keepHeaders would
// park (the allow-listed ones, every value of each: the replay shows the
// handler what the original request showed it) are over MaxHeaderValues
// or MaxHeaderBytes.
func (g *Guard) checkHeaders(h http.Header) *Error {
	values, size := 0, 0
	for k, vs := range h {
		if !g.replayHeaders[k] || neverReplay[k] {
			continue
		}
		values += len(vs)
		for _, v := range vs {
			size += len(k) + len(v)
		}
		if values > g.cfg.MaxHeaderValues || size > g.cfg.MaxHeaderBytes {
			return refuse(http.StatusRequestHeaderFieldsTooLarge, "headers_too_large",
				"This request carries more headers than can be held while you verify.",
				fmt.Errorf("%w: over %d values or %d bytes", ErrHeaderTooLarge, g.cfg.MaxHeaderValues, g.cfg.MaxHeaderBytes))
		}
	}
	return nil
}

// readBody buffers a protected request's body up to MaxBodyBytes.
func (g *Guard) readBody(r *http.Request) ([]byte, *Error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
		return nil, refuse(http.StatusUnsupportedMediaType, "unsupported_body",
			"File uploads cannot be held while you verify. Verify first, then upload again.", ErrUnsupportedBody)
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, refuse(http.StatusUnsupportedMediaType, "unsupported_body",
			"Compressed request bodies are not accepted here.", ErrUnsupportedBody)
	}
	tooLarge := &g.tooLarge
	if r.ContentLength > g.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	var prefix []byte
	src := io.Reader(r.Body)
	if pb, ok := r.Body.(*preservedBody); ok {
		if pb.over {
			return nil, tooLarge
		}
		prefix = pb.buf
		src = pb.rc
	} else if r.PostForm != nil || r.MultipartForm != nil {
		return nil, internalError(ErrBodyConsumed)
	}
	rest, err := io.ReadAll(io.LimitReader(src, g.cfg.MaxBodyBytes+1-int64(len(prefix))))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		return nil, refuse(http.StatusBadRequest, "bad_request", "The request body could not be read.", fmt.Errorf("%w: %w", ErrBadRequest, err))
	}
	body := append(prefix[:len(prefix):len(prefix)], rest...)
	if int64(len(body)) > g.cfg.MaxBodyBytes {
		return nil, tooLarge
	}
	return body, nil
}

// preservedBody records what earlier middleware reads of a body, so the
// guard can still park the exact bytes. See PreserveBody.
type preservedBody struct {
	rc    io.ReadCloser
	buf   []byte
	limit int64
	over  bool
}

func (p *preservedBody) Read(b []byte) (int, error) {
	n, err := p.rc.Read(b)
	if n > 0 && !p.over {
		if int64(len(p.buf)+n) > p.limit {
			p.over = true
			p.buf = nil
		} else {
			p.buf = append(p.buf, b[:n]...)
		}
	}
	return n, err
}

func (p *preservedBody) Close() error { return p.rc.Close() }

// PreserveBody lets middleware that reads the request body (a CSRF check
// reading a form field, say) run before the guard: it records up to
// MaxBodyBytes of what they read, so the guard parks the exact bytes. Put
// it outermost. Without it the guard refuses with ErrBodyConsumed rather
// than park a body it no longer has.
func (g *Guard) PreserveBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body == nil || r.Body == http.NoBody {
			next.ServeHTTP(w, r)
			return
		}
		r2 := r.WithContext(r.Context())
		r2.Body = &preservedBody{rc: r.Body, limit: g.cfg.MaxBodyBytes}
		next.ServeHTTP(w, r2)
	})
}

// PreserveBodyOf applies PreserveBody to r in place, for adapters whose
// framework owns the request (echo's Pre middleware).
func (g *Guard) PreserveBodyOf(r *http.Request) {
	if r.Body != nil && r.Body != http.NoBody {
		if _, ok := r.Body.(*preservedBody); !ok {
			r.Body = &preservedBody{rc: r.Body, limit: g.cfg.MaxBodyBytes}
		}
	}
}

func hasCookie(r *http.Request, name string) bool {
	_, err := r.Cookie(name)
	return err == nil
}

func withBody(r *http.Request, body []byte) *http.Request {
	if r.Body == nil || r.Body == http.NoBody {
		return r
	}
	r2 := r.WithContext(r.Context())
	r2.Body = io.NopCloser(bytes.NewReader(body))
	r2.ContentLength = int64(len(body))
	return r2
}

func withVerification(r *http.Request, action, user, how string, attrs map[string]any) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), verificationKey{},
		Verification{Action: action, UserID: user, How: how, Attributes: attrs}))
}

func defaultIsAPI(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "navigate":
		return false
	case "cors", "same-origin", "no-cors", "websocket":
		return true
	}
	if r.Header.Get("X-Requested-With") != "" {
		return true
	}
	return !strings.Contains(strings.ToLower(r.Header.Get("Accept")), "text/html")
}

// clientIP is the connection's address, or the right-most untrusted
// address of X-Forwarded-For when the connection comes from a trusted
// proxy.
func (g *Guard) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return ""
	}
	addr = addr.Unmap()
	if !g.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
		}
		a = a.Unmap()
		if !g.trusted(a) {
			return a.String()
		}
		addr = a
	}
	return addr.String()
}

func (g *Guard) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// origin is an allowed challenge origin.
type origin struct {
	scheme, host string // host may start with "*."
}

func parseOrigin(s string) (origin, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.User != nil {
		return origin{}, fmt.Errorf("stepup: ChallengeOrigins: %q is not scheme://host[:port]", s)
	}
	host := strings.ToLower(u.Host)
	if strings.Contains(host, "*") {
		rest, ok := strings.CutPrefix(host, "*.")
		h := rest
		if i := strings.LastIndexByte(h, ':'); i >= 0 {
			h = h[:i]
		}
		// "*." must be followed by a registrable name: at least two labels,
		// no other wildcard.
		if !ok || strings.Contains(rest, "*") || strings.Count(h, ".") < 1 || strings.HasPrefix(h, ".") || strings.HasSuffix(h, ".") || strings.Contains(h, "..") {
			return origin{}, fmt.Errorf("stepup: ChallengeOrigins: %q: a wildcard must be a leading \"*.\" before a domain such as authsignal.com", s)
		}
		host = "*." + rest
	}
	return origin{u.Scheme, host}, nil
}

func (o origin) allows(u *url.URL) bool {
	if u.Scheme != o.scheme {
		return false
	}
	host := strings.ToLower(u.Host)
	if suffix, ok := strings.CutPrefix(o.host, "*"); ok {
		return strings.HasSuffix(host, suffix) && len(host) > len(suffix)
	}
	return host == o.host
}

// checkChallenge refuses a challenge URL the browser must not be sent to,
// and a response that does not carry the park's idempotency key.
func (g *Guard) checkChallenge(resp *authsignal.TrackResponse, parkID string) error {
	if resp.IdempotencyKey != parkID {
		return errors.New("track answered with another idempotency key")
	}
	u, err := url.Parse(resp.URL)
	if err != nil || resp.URL == "" || u.User != nil || u.Host == "" {
		return errors.New("challenge URL missing or malformed")
	}
	for _, c := range resp.URL {
		if c < ' ' || c == 0x7f {
			return errors.New("challenge URL has control characters")
		}
	}
	for _, o := range g.origins {
		if o.allows(u) {
			return nil
		}
	}
	return fmt.Errorf("the challenge URL's origin %s://%s is not in Config.ChallengeOrigins %q; add it there if it is your Authsignal (or emulator) host",
		u.Scheme, u.Host, g.cfg.ChallengeOrigins)
}

func (g *Guard) callbackFor(parkID string) string {
	u := *g.callback
	q := u.Query()
	q.Set("park", parkID)
	u.RawQuery = q.Encode()
	return u.String()
}

// safePath accepts what a Location header may carry as a same-origin path:
// one leading "/", never "//" or "/\", no control characters or spaces.
func safePath(p string) bool {
	if p == "" || p[0] != '/' || strings.HasPrefix(p, "//") || strings.ContainsRune(p, '\\') {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] <= ' ' || p[i] >= 0x7f {
			return false
		}
	}
	return true
}

func safeQuery(q string) bool {
	for i := 0; i < len(q); i++ {
		if q[i] <= ' ' || q[i] >= 0x7f || q[i] == '#' {
			return false
		}
	}
	return true
}

func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("stepup: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func validID(id string) bool {
	if len(id) != 22 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func usedID(token string) string {
	h := sha256.Sum256([]byte("stepup-token\x00" + token))
	return "t." + base64.RawURLEncoding.EncodeToString(h[:])
}

func (g *Guard) now() time.Time { return g.cfg.Now() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// Policies returns a copy of the policy table the guard was built with.
func (g *Guard) Policies() []Policy {
	return clonePolicies(g.cfg.Policies)
}
