package stepup

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup/authsignal"
)

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
	// Any gorilla/sessions Store. Required unless CookieKeys is set, and
	// not used when it is. With a *sessions.CookieStore the guard writes
	// its own cookie with copies of the store's codecs; with any other
	// Store the data goes into a gorilla session of that Store. The guard
	// sets the options of its own session whatever the Store's defaults:
	// Path "/", HttpOnly, SameSite=Lax (its cookie must come back on the
	// top-level redirect from the challenge page; Strict would not), Secure
	// when CallbackURL is https, and a MaxAge no longer than the longest
	// record it points to or the mark that the browser is established for
	// its user (30 days after a passed challenge; see
	// MaxChallengesPerUser); the cookie is deleted when it holds nothing.
	Sessions sessions.Store
	// CookieKeys are the secrets with which the guard seals its session
	// cookie (SessionName) itself, with AES-256-GCM and no gorilla Store:
	// cheaper than a CookieStore's codecs in time and allocations. Each is
	// a random secret of at least 32 bytes (`openssl rand -base64 32`,
	// decoded, or 32 bytes of crypto/rand); keep them as secret as a
	// session key. The first key seals; every key opens. To rotate, put the
	// new key first and keep the old one after it until the cookies it
	// sealed have expired (30 days after a challenge passed, the
	// established mark, or the longest of ParkTTL and the Remember
	// durations; dropping it earlier loses only those). A cookie that does not open (another key, another cookie
	// name, altered, past the deadline it was sealed with) is no session.
	// The cookie options are those described under Sessions. Optional;
	// when set, Sessions is not needed, and is ignored by the guard if
	// given too.
	CookieKeys [][]byte
	// RecordKeys are the secrets with which the guard seals every record
	// it keeps in Store (AES-256-GCM, keys derived with HKDF-SHA256): the
	// parked request's body, query and headers are unreadable there, and a
	// record altered, planted, or moved to another id (another user's or
	// another park's) does not open and is treated as missing: never
	// replayed, never a pass or a grant. Each is a random secret of at
	// least 32 bytes, as for CookieKeys; every instance sharing the Store
	// needs the same keys. The first key seals; every key opens: to
	// rotate, put the new key first and keep the old one until the records
	// it sealed have expired (the longest of ParkTTL plus a minute and the
	// Remember durations). Optional. Default: keys derived from CookieKeys
	// (under a label of their own) when it is set; else, with a
	// *MemoryStore, a random key of this process. With any other Store, one
	// of RecordKeys or CookieKeys is required.
	RecordKeys [][]byte
	// UserID returns the logged-in user's id, or "" when nobody is logged
	// in. An error refuses the request with a 500. Required.
	UserID func(r *http.Request) (string, error)
	// CallbackURL is the absolute URL at which Callback is mounted.
	// Required.
	CallbackURL string

	// Policies is the declarative table used by Middleware and the
	// adapters. Optional.
	Policies []Policy
	// Store keeps parked requests, passes, grants and spent tokens, each
	// sealed before it gets there (see RecordKeys). Optional. Default
	// NewMemoryStore().
	Store Store
	// SessionName is the name of the guard's session cookie (with
	// CookieKeys or a CookieStore) or gorilla session. Optional. Default
	// "stepup".
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
	// challenges) one user may open per ParkTTL, so that one account cannot
	// fill the Store for everybody; beyond it the answer is 429 with
	// Retry-After. A challenge counts until it is passed (its slot is then
	// given back, for up to five times this many passes per ParkTTL, a pace
	// no person keeps up) or ParkTTL ends. The challenges opened from sessions
	// established for the user (where a challenge of the user was passed)
	// count apart from those of every other client, each with this cap, so
	// that a thief holding the login session but not the second factor
	// cannot lock the user's established browsers out. The caps are counted
	// across every instance when the Store is a Counter (stores/redis is),
	// else in this process. Optional. Default 20.
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
	// and start a new guard session at every request, escaping the
	// per-session cap; it then still counts against MaxChallengesPerUser
	// among the clients not established for the user, never against the
	// user's established sessions. Set SessionID for a per-session cap that
	// holds against such a client too. "" means no session: only the
	// per-user cap applies.
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
	// ReviewStatus is the status for REVIEW_REQUIRED on a route whose
	// policy has no Review. Optional. Default 403.
	ReviewStatus int
	// ReviewPoll is how often, at most, the guard asks Authsignal about
	// one review park (Policy.Review) when its status URL is visited or
	// polled: at most once per ReviewPoll per park and instance (counted
	// in this process's memory). It is also how often the waiting page
	// refreshes itself and the Retry-After of a pending API answer.
	// Optional. Default 5 seconds.
	ReviewPoll time.Duration
	// WebhookSecret is the signing secret of the webhooks Authsignal sends
	// to Guard.Webhook. Optional; without it Webhook refuses every
	// delivery, and reviews are learned by asking Authsignal only.
	WebhookSecret string
	// ChallengeOrigins lists where the guard may send a browser for a
	// challenge: "scheme://host[:port]", with an optional "*." host prefix.
	// A challenge URL elsewhere is a configuration error: the request is
	// refused with a 500 wrapping ErrMisconfigured (fail-open policies
	// included), and the log names the origin to add. Optional.
	// Default "https://authsignal.com" and "https://*.authsignal.com". Set
	// it to the emulator's URL in development.
	ChallengeOrigins []string
	// ConfirmPage, when set, is shown to a browser before it is sent to a
	// challenge whose policy displays attributes (Attribute.Display): a
	// page, executed with a ConfirmData, that shows the values the user
	// approves and links on to the challenge URL. Optional. Default nil:
	// a 303 straight to the challenge. ConfirmTemplate returns the
	// package's page. It is an html/template, so values are escaped; the
	// guard executes it concurrently, so leave it unchanged after New.
	ConfirmPage *template.Template
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
	// OnStep is called as the guard begins a step that takes time (Step):
	// a track or validate call to Authsignal, a challenged request written
	// to the Store, a parked request run after its challenge. It returns
	// the context the step runs in (nil: ctx) and a function the guard
	// calls with the step's error, nil on success, when the step ends.
	// Telemetry uses it for spans and latencies (telemetry/otel). It must
	// not block. Optional.
	OnStep func(ctx context.Context, step *Step) (context.Context, func(err error))
	// Logger receives one line per decision, never a token, body, cookie
	// or key. Optional. Default: slog.Default() receives the decisions at
	// level Warn and above (refusals other than "not logged in", blocks,
	// reviews, fail-opens; provider, store and wiring failures at Error),
	// so that a guard refusing everything is never silent.
	Logger *slog.Logger
	// Now is the clock. Optional. Default time.Now.
	Now func() time.Time

	// SignIn turns on MFA at sign-in (Guard.SignIn): Action is tracked
	// after the first factor, and Complete starts the login session once
	// the second one is satisfied. Optional. Default: no sign-in.
	SignIn *SignIn
}

// Guard puts step-up authentication in front of routes. It is safe for
// concurrent use and immutable after New.
type Guard struct {
	cfg            Config
	rules          table
	callback       *url.URL
	origins        []origin
	replayHeaders  map[string]bool
	tooLarge       Error           // the 413 answer, built once
	limiter        Counter         // Config.Store when it is one, else in-process
	firstSegments  map[string]bool // of the protected routes, nil when any may match (mayBeProtected)
	callbackPrefix string          // the callback URL up to the park id (callbackParts)
	callbackSuffix string
	cookie         cookieCodec  // the guard's own cookie with CookieKeys or a CookieStore, else nil (cookie.go)
	signIn         *signInSetup // Config.SignIn checked, nil without it (signin.go)
	faults         faultLog     // the log lines of store faults, one per interval (outage.go)
	records        *sealedStore // Config.Store, sealing and opening every record (also in cfg.Store)
	grantOwners    [][]byte     // the keys that name a user's grant slots, the sealing key's first (grants.go)
	polls          pollLimiter  // when each review park was last asked about (review.go)
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
	if cfg.Sessions == nil && len(cfg.CookieKeys) == 0 {
		return nil, errors.New("stepup: Config.Sessions or Config.CookieKeys is required")
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
	if err := (&http.Cookie{Name: cfg.SessionName}).Valid(); err != nil {
		return nil, fmt.Errorf("stepup: Config.SessionName %q is not a cookie name: %w", cfg.SessionName, err)
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
	if cfg.ReviewPoll == 0 {
		cfg.ReviewPoll = 5 * time.Second
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
	case cfg.ReviewPoll < 0:
		return nil, errors.New("stepup: Config.ReviewPoll must be positive")
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
		limiter: newParkLimiter()}
	if len(cfg.CookieKeys) > 0 {
		kc, err := newKeyedCookie(cfg.CookieKeys, cfg.SessionName)
		if err != nil {
			return nil, err
		}
		g.cookie = kc
	} else if codecs := ownCodecs(cfg.Sessions); codecs != nil {
		g.cookie = secureCookies{name: cfg.SessionName, codecs: codecs}
	}
	if c, ok := cfg.Store.(Counter); ok {
		g.limiter = c // the caps hold across the instances sharing the Store
	}
	if cfg.SignIn != nil {
		if g.signIn, err = newSignIn(&cfg); err != nil {
			return nil, err
		}
		g.cfg.SignIn = &g.signIn.SignIn
	}
	sealer, err := newRecordSealer(&cfg)
	if err != nil {
		return nil, err
	}
	g.records = newSealedStore(cfg.Store, sealer, cfg.Logger)
	g.cfg.Store = g.records
	g.grantOwners = sealer.owners
	g.callbackPrefix, g.callbackSuffix = callbackParts(cb)
	g.firstSegments = firstSegments(rules)
	for _, o := range cfg.ChallengeOrigins {
		po, err := parseOrigin(o)
		if err != nil {
			return nil, err
		}
		g.origins = append(g.origins, po)
	}
	g.tooLarge = *refusal(http.StatusRequestEntityTooLarge, "body_too_large",
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

// Policies returns a copy of the policy table the guard was built with.
func (g *Guard) Policies() []Policy {
	return clonePolicies(g.cfg.Policies)
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

func (g *Guard) now() time.Time { return g.cfg.Now() }
