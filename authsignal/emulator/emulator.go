package emulator

import (
	"container/list"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-webauthn/webauthn/webauthn"
)

// The states an action can be in, as Authsignal spells them.
const (
	StateAllow              = "ALLOW"
	StateBlock              = "BLOCK"
	StateChallengeRequired  = "CHALLENGE_REQUIRED"
	StateReviewRequired     = "REVIEW_REQUIRED"
	StateChallengeSucceeded = "CHALLENGE_SUCCEEDED"
	StateChallengeFailed    = "CHALLENGE_FAILED"
	StateReviewSucceeded    = "REVIEW_SUCCEEDED"
	StateReviewFailed       = "REVIEW_FAILED"
)

// The verification methods the hosted page can run.
const (
	MethodEmailOTP = "EMAIL_OTP"
	MethodSMS      = "SMS"
)

// DefaultSecret is the API secret used when Config.Secret is empty.
const DefaultSecret = "emulator-secret"

const (
	defaultMaxActions = 10000
	tokenLifetime     = 10 * time.Minute
	codeLifetime      = 5 * time.Minute
	maxCodeAttempts   = 3
	maxCodeSends      = 10
	maxSeenPerUser    = 1000
)

// Config configures an Emulator. The zero value is usable and faithful to a
// tenant without rules: every action is allowed and no user is enrolled.
// AutoEnroll with ChallengeByDefault is the development mode, in which every
// action is challenged.
type Config struct {
	// Secret is the API secret key: the Basic auth user name (with an empty
	// password) and the HS256 key of the tokens. Optional. Default
	// DefaultSecret ("emulator-secret").
	Secret string

	// Rules decide the state of tracked actions. Optional. Default nil: every
	// action is ALLOW, like a real tenant without rules.
	Rules *Rules

	// Users are enrolled before the first request. Optional. A user without
	// Methods is enrolled with EMAIL_OTP.
	Users []User

	// AutoEnroll treats every user as enrolled with EMAIL_OTP. Optional.
	AutoEnroll bool

	// ChallengeByDefault makes CHALLENGE_REQUIRED the state of an action that
	// nothing else decides: every action when Rules is nil, and otherwise an
	// action for which no rule matches and neither its Default nor
	// Rules.DefaultState names a state. Optional. Default false: such actions
	// are ALLOW, as with a real tenant without rules. With AutoEnroll it is
	// the development mode of cmd/authsignal-emulator: every action of every
	// user is challenged until a rules file says otherwise.
	ChallengeByDefault bool

	// DevMode shows the one-time code on the hosted page (element #dev-code)
	// and lets Logf print it. Optional. Tests read Outbox instead.
	DevMode bool

	// Now is the clock used for tokens, codes and timestamps. Optional.
	// Default time.Now.
	Now func() time.Time

	// PublicURL is the base URL, http(s)://host[:port] without a path (the
	// page is served at the root), of the challenge URLs and of the tokens'
	// iss claim. Optional. Default: derived from each API request's scheme
	// and Host. New sets it to the server's URL.
	PublicURL string

	// AppOrigins are the origins, http(s)://host[:port], of the applications
	// that launch the hosted page with Authsignal's browser SDK in popup mode
	// (an iframe): only they may frame the page (CSP frame-ancestors). In
	// popup and window mode the page posts its messages, the token included,
	// to these origins and to the origin of the track's redirectUrl, never to
	// any other. Optional. Default none: no site may frame the page
	// (X-Frame-Options: DENY), and window mode works for the origin of the
	// redirectUrl.
	AppOrigins []string

	// MaxActions bounds the stored actions, the outbox and the users created
	// through the API; the oldest are evicted first. Optional. Default 10000.
	MaxActions int

	// WebhookURL, when set, receives a signed webhook for every change of
	// an action's state, signed with WebhookSecret (webhooks.go). Optional.
	WebhookURL    string
	WebhookSecret string

	// Logf receives one line per decision. Optional. Secrets, tokens and codes
	// are never passed to it, except codes in DevMode.
	Logf func(format string, args ...any)
}

// User is an Authsignal user known to the emulator.
type User struct {
	ID          string
	Email       string
	PhoneNumber string
	Methods     []string // enrolled verification methods: MethodEmailOTP, MethodSMS, MethodAuthenticatorApp (needs TOTPSecret)
	// TOTPSecret is the base32 secret of the user's authenticator app
	// (MethodAuthenticatorApp): 30-second steps, 6 digits, SHA-1, as
	// github.com/pquerna/otp/totp.GenerateCode computes them. Passkeys
	// cannot be configured: users register them on the hosted page.
	TOTPSecret string
}

// Request is the body of a track call as the emulator received it.
type Request struct {
	RedirectURL        string         `json:"redirectUrl,omitempty"`
	RedirectToSettings bool           `json:"redirectToSettings,omitempty"`
	Email              string         `json:"email,omitempty"`
	PhoneNumber        string         `json:"phoneNumber,omitempty"`
	Username           string         `json:"username,omitempty"`
	IPAddress          string         `json:"ipAddress,omitempty"`
	UserAgent          string         `json:"userAgent,omitempty"`
	DeviceID           string         `json:"deviceId,omitempty"`
	Scope              string         `json:"scope,omitempty"`
	Custom             map[string]any `json:"custom,omitempty"`
	IdempotencyKey     string         `json:"idempotencyKey,omitempty"`
	ChallengeID        string         `json:"challengeId,omitempty"`
	Locale             string         `json:"locale,omitempty"`
	CustomDomain       string         `json:"customDomain,omitempty"` // sent by the Node SDK; kept, not used
	Crypto             map[string]any `json:"crypto,omitempty"`       // sent by the Go SDK; kept, not used
}

// TrackedAction is a copy of a tracked action. The embedded Request is the
// track body as received; IdempotencyKey is the action's effective key (the
// client's or a generated one) and State its current state.
type TrackedAction struct {
	UserID             string   `json:"userId"`
	Action             string   `json:"action"`
	IdempotencyKey     string   `json:"idempotencyKey"`
	State              string   `json:"state"`
	RuleIDs            []string `json:"ruleIds"`
	VerificationMethod string   `json:"verificationMethod,omitempty"`
	Request            `json:"request"`
	CreatedAt          time.Time `json:"createdAt"`
	StateUpdatedAt     time.Time `json:"stateUpdatedAt"`
}

// Message is a one-time code the emulator "sent".
type Message struct {
	UserID         string    `json:"userId"`
	Action         string    `json:"action"`
	IdempotencyKey string    `json:"idempotencyKey"`
	Channel        string    `json:"channel"` // "email" or "sms"
	To             string    `json:"to"`
	Code           string    `json:"code"`
	SentAt         time.Time `json:"sentAt"`
}

// Fault makes API requests misbehave, for testing clients. Faults never apply
// to the hosted page or to the /v1/__emulator endpoints.
type Fault struct {
	Latency   time.Duration // wait before answering (or before the other faults)
	Status    int           // answer with this status and an error body; 100..599, else 500
	Malformed bool          // answer Status (default 200) with broken JSON
	Drop      bool          // close the connection without a response
	Times     int           // number of requests affected; 0 = until ClearFaults
	// PathPrefix limits the fault to request paths with this prefix, e.g.
	// "/v1/validate"; a prefix not starting with /v1 is relative to /v1, so
	// "/validate" is the same. Empty = every API path.
	PathPrefix string
}

// Emulator is a local Authsignal Server API: the REST API under /v1 and the
// hosted challenge page under /challenge. It is an http.Handler and is safe
// for concurrent use.
type Emulator struct {
	cfg      Config
	secret   []byte
	rules    *ruleSet
	logf     func(string, ...any)
	requests atomic.Int64

	mu        sync.Mutex
	users     map[string]*userRecord
	userOrder *list.List // unpinned users, oldest first
	actions   map[actionKey]*actionRecord
	order     *list.List // actions, oldest first
	outbox    []Message
	fault     *Fault
	faultLeft int
	webhooks  webhookSender // webhooks.go
}

type actionKey struct{ user, action, key string }

type actionRecord struct {
	key     actionKey
	state   string
	method  string // verification method that settled the challenge
	ruleIDs []string
	req     Request
	enrol   bool     // a matched rule lets an unenrolled user enrol on the page
	allowed []string // the methods the action accepts (rules' methods); nil: any
	// Enrolment on the page: the address whose code was verified, the
	// method then picked, and the TOTP secret being set up.
	enrolEmail  string
	enrolMethod string
	enrolTOTP   string
	passkey     *passkeyCeremony // the WebAuthn ceremony under way
	createdAt   time.Time
	updatedAt   time.Time
	code        *oneTimeCode
	attempts    int
	sends       int
	elem        *list.Element
}

type oneTimeCode struct {
	code, method, to string
	expires          time.Time
}

type userRecord struct {
	id          string
	email       string
	phone       string
	username    string
	displayName string
	custom      map[string]any
	methods     []string
	pinned      bool // configured or enrolled by a test: never evicted
	seen        map[string]struct{}
	elem        *list.Element
	profile     profile // what the users and authenticators endpoints add: users.go
	totpSecret  string  // MethodAuthenticatorApp
	totpStep    int64   // the last TOTP time step accepted: a code is good once
	passkeys    []webauthn.Credential
	webauthnID  []byte // the WebAuthn user handle, random
}

// NewHandler returns an Emulator to mount as an http.Handler. It validates
// cfg and applies defaults to a copy.
func NewHandler(cfg Config) (*Emulator, error) {
	if cfg.Secret == "" {
		cfg.Secret = DefaultSecret
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxActions < 0 {
		return nil, errors.New("emulator: MaxActions must not be negative")
	}
	if cfg.MaxActions == 0 {
		cfg.MaxActions = defaultMaxActions
	}
	if cfg.PublicURL != "" {
		u, err := url.Parse(cfg.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || !validHost(u.Host) ||
			strings.Trim(u.Path, "/") != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, fmt.Errorf("emulator: PublicURL %q is not of the form http(s)://host[:port]", cfg.PublicURL)
		}
		cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	}
	origins, err := appOrigins(cfg.AppOrigins)
	if err != nil {
		return nil, err
	}
	cfg.AppOrigins = origins
	fallback := StateAllow
	if cfg.ChallengeByDefault {
		fallback = StateChallengeRequired
	}
	rs, err := compileRulesWithDefault(cfg.Rules, fallback)
	if err != nil {
		return nil, err
	}
	e := &Emulator{
		cfg:       cfg,
		secret:    []byte(cfg.Secret),
		rules:     rs,
		logf:      cfg.Logf,
		users:     make(map[string]*userRecord),
		userOrder: list.New(),
		actions:   make(map[actionKey]*actionRecord),
		order:     list.New(),
	}
	if e.logf == nil {
		e.logf = func(string, ...any) {}
	}
	e.webhooks.url, e.webhooks.secret = cfg.WebhookURL, cfg.WebhookSecret
	e.cfg.Users = nil // the live records are in e.users
	for i, u := range cfg.Users {
		if u.ID == "" {
			return nil, fmt.Errorf("emulator: Users[%d]: empty ID", i)
		}
		if _, dup := e.users[u.ID]; dup {
			return nil, fmt.Errorf("emulator: Users[%d]: duplicate ID %q", i, u.ID)
		}
		for _, m := range u.Methods {
			if !supportedMethod(m) {
				return nil, fmt.Errorf("emulator: Users[%d] (%q): unsupported method %q (want %s, %s or %s; passkeys are registered on the hosted page)",
					i, u.ID, m, MethodEmailOTP, MethodSMS, MethodAuthenticatorApp)
			}
			if m == MethodAuthenticatorApp && !validTOTPSecret(u.TOTPSecret) {
				return nil, fmt.Errorf("emulator: Users[%d] (%q): %s needs TOTPSecret (base32)", i, u.ID, m)
			}
		}
		e.enrollLocked(u)
	}
	return e, nil
}

// supportedMethod reports whether m can be enrolled by Config.Users,
// EnrollUser and the API (passkeys only on the hosted page).
func supportedMethod(m string) bool { return m != MethodPasskey && pageMethod(m) }

// ServeHTTP serves the hosted page under /challenge and the API everywhere
// else. API requests are authenticated before they are routed.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p := r.URL.Path; p == "/challenge" || strings.HasPrefix(p, "/challenge/") {
		e.servePage(w, r)
		return
	}
	if p := r.URL.Path; (p == "/v1" || strings.HasPrefix(p, "/v1/")) && !strings.HasPrefix(p, controlPrefix) {
		e.requests.Add(1)
		if e.injectFault(w, r) {
			return
		}
	}
	if !e.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"The request is unauthorized. Check that your API key and region base URL are correctly configured.")
		return
	}
	e.serveAPI(w, r)
}

func (e *Emulator) now() time.Time { return e.cfg.Now() }

// EnrollUser enrols (or re-enrols) u. Methods other than MethodEmailOTP,
// MethodSMS and MethodAuthenticatorApp (with the user's TOTPSecret, this
// one's or an earlier one) are ignored, as is MethodPasskey without a
// passkey registered on the hosted page; no Methods means MethodEmailOTP.
func (e *Emulator) EnrollUser(u User) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.enrollLocked(u)
}

func (e *Emulator) enrollLocked(u User) {
	rec := e.userLocked(u.ID)
	if rec.elem != nil {
		e.userOrder.Remove(rec.elem)
		rec.elem = nil
	}
	rec.pinned = true
	if u.Email != "" {
		rec.email = u.Email
	}
	if u.PhoneNumber != "" {
		rec.phone = u.PhoneNumber
	}
	if validTOTPSecret(u.TOTPSecret) && u.TOTPSecret != rec.totpSecret {
		rec.totpSecret, rec.totpStep = u.TOTPSecret, 0
	}
	rec.methods = rec.methods[:0]
	for _, m := range u.Methods {
		if pageMethod(m) && usableLocked(rec, m) && !contains(rec.methods, m) {
			rec.methods = append(rec.methods, m)
		}
	}
	if len(rec.methods) == 0 {
		rec.methods = append(rec.methods, MethodEmailOTP)
	}
}

// userLocked returns the user with this id, creating an unpinned record (and
// evicting the oldest unpinned one beyond MaxActions) if needed.
func (e *Emulator) userLocked(id string) *userRecord {
	if u, ok := e.users[id]; ok {
		return u
	}
	u := &userRecord{id: id, seen: make(map[string]struct{}), profile: profile{createdAt: e.now()}}
	e.users[id] = u
	u.elem = e.userOrder.PushBack(u)
	for e.userOrder.Len() > e.cfg.MaxActions {
		old := e.userOrder.Remove(e.userOrder.Front()).(*userRecord)
		old.elem = nil
		delete(e.users, old.id)
	}
	return u
}

func (e *Emulator) enrolled(u *userRecord) bool {
	return e.cfg.AutoEnroll || (u != nil && len(u.methods) > 0)
}

func (e *Emulator) methodsOf(u *userRecord) []string {
	var ms []string
	if u != nil {
		ms = append(ms, u.methods...)
	}
	if e.cfg.AutoEnroll && !contains(ms, MethodEmailOTP) {
		ms = append(ms, MethodEmailOTP)
	}
	if ms == nil {
		ms = []string{}
	}
	return ms
}

func (u *userRecord) markSeen(req *Request) {
	for _, kv := range [...][2]string{{"deviceId", req.DeviceID}, {"ipAddress", req.IPAddress}} {
		if kv[1] == "" {
			continue
		}
		if len(u.seen) >= maxSeenPerUser {
			for k := range u.seen { // drop an arbitrary entry: a bound, not an LRU
				delete(u.seen, k)
				break
			}
		}
		u.seen[kv[0]+"\x00"+kv[1]] = struct{}{}
	}
}

// storeActionLocked adds rec, evicting the oldest actions beyond MaxActions.
func (e *Emulator) storeActionLocked(rec *actionRecord) {
	e.actions[rec.key] = rec
	rec.elem = e.order.PushBack(rec)
	for e.order.Len() > e.cfg.MaxActions {
		e.removeActionLocked(e.order.Front().Value.(*actionRecord))
	}
}

func (e *Emulator) removeActionLocked(rec *actionRecord) {
	e.order.Remove(rec.elem)
	delete(e.actions, rec.key)
}

// setStateLocked moves rec to state; a successful challenge makes the
// request's device and IP address known for the user.
func (e *Emulator) setStateLocked(rec *actionRecord, state, method string) {
	rec.state = state
	rec.updatedAt = e.now()
	if method != "" {
		rec.method = method
	}
	rec.code = nil
	if state == StateChallengeSucceeded || state == StateAllow {
		e.userLocked(rec.key.user).markSeen(&rec.req)
	}
	e.webhookLocked(rec) // webhooks.go
}

// Tracked returns copies of the stored actions, oldest first.
func (e *Emulator) Tracked() []TrackedAction {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]TrackedAction, 0, e.order.Len())
	for el := e.order.Front(); el != nil; el = el.Next() {
		rec := el.Value.(*actionRecord)
		req := rec.req
		req.Custom = copyMap(req.Custom)
		req.Crypto = copyMap(req.Crypto)
		out = append(out, TrackedAction{
			UserID:             rec.key.user,
			Action:             rec.key.action,
			IdempotencyKey:     rec.key.key,
			State:              rec.state,
			RuleIDs:            append([]string{}, rec.ruleIDs...),
			VerificationMethod: rec.method,
			Request:            req,
			CreatedAt:          rec.createdAt,
			StateUpdatedAt:     rec.updatedAt,
		})
	}
	return out
}

// Outbox returns copies of the codes sent, oldest first.
func (e *Emulator) Outbox() []Message {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Message{}, e.outbox...)
}

// LastCode returns the last code sent to the user.
func (e *Emulator) LastCode(userID string) (string, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for i := len(e.outbox) - 1; i >= 0; i-- {
		if e.outbox[i].UserID == userID {
			return e.outbox[i].Code, true
		}
	}
	return "", false
}

// postLocked puts m in the bounded outbox.
func (e *Emulator) postLocked(m Message) {
	e.outbox = append(e.outbox, m)
	if over := len(e.outbox) - e.cfg.MaxActions; over > 0 {
		e.outbox = append(e.outbox[:0:0], e.outbox[over:]...)
	}
}

// Requests returns the number of API requests (paths under /v1) received,
// faulted and unauthorized ones included; /v1/__emulator is not counted.
func (e *Emulator) Requests() int { return int(e.requests.Load()) }

// SetFault makes API requests misbehave as f says, replacing any previous
// fault.
func (e *Emulator) SetFault(f Fault) {
	if p := f.PathPrefix; p != "" && p != "/v1" && !strings.HasPrefix(p, "/v1/") {
		f.PathPrefix = "/v1/" + strings.TrimPrefix(p, "/")
	}
	if f.Status != 0 && (f.Status < 100 || f.Status > 599) {
		f.Status = http.StatusInternalServerError
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fault, e.faultLeft = &f, f.Times
}

// ClearFaults removes the fault set by SetFault.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.fault, e.faultLeft = nil, 0
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// copyMap deep-copies a JSON-shaped map.
func copyMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = copyValue(v)
	}
	return out
}

func copyValue(v any) any {
	switch v := v.(type) {
	case map[string]any:
		return copyMap(v)
	case []any:
		out := make([]any, len(v))
		for i, x := range v {
			out[i] = copyValue(x)
		}
		return out
	default:
		return v
	}
}
