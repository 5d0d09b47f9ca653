package emulator

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	maxBodyBytes  = 1 << 20
	maxUserIDLen  = 512
	maxKeyLen     = 255
	maxURLLen     = 2048
	controlPrefix = "/v1/__emulator/"
	timeLayout    = "2006-01-02T15:04:05.000Z07:00"
)

// apiError is the error body of every non-2xx answer; Error is the deprecated
// twin of ErrorCode.
type apiError struct {
	Error            string `json:"error"`
	ErrorCode        string `json:"errorCode"`
	ErrorDescription string `json:"errorDescription"`
}

func writeError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, apiError{Error: code, ErrorCode: code, ErrorDescription: desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only JSON-shaped values are ever written
		status, b = http.StatusInternalServerError, []byte(`{"error":"internal_error","errorCode":"internal_error","errorDescription":"Encoding the response failed."}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

func badRequest(w http.ResponseWriter, desc string) {
	writeError(w, http.StatusBadRequest, "invalid_request", desc)
}

func notFound(w http.ResponseWriter, desc string) {
	writeError(w, http.StatusNotFound, "not_found", desc)
}

// authorized checks Basic auth: the secret as user name, an empty password.
// Hashing first makes the comparison constant-time whatever the lengths.
func (e *Emulator) authorized(r *http.Request) bool {
	user, pass, ok := r.BasicAuth()
	if !ok {
		return false
	}
	got, want := sha256.Sum256([]byte(user)), sha256.Sum256(e.secret)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1 && pass == ""
}

// injectFault applies the current fault to an API request and reports
// whether the request has been answered (or dropped).
func (e *Emulator) injectFault(w http.ResponseWriter, r *http.Request) bool {
	e.mu.Lock()
	if e.fault == nil || !strings.HasPrefix(r.URL.Path, e.fault.PathPrefix) {
		e.mu.Unlock()
		return false
	}
	f := *e.fault
	if e.faultLeft > 0 {
		if e.faultLeft--; e.faultLeft == 0 {
			e.fault = nil
		}
	}
	e.mu.Unlock()

	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return true
		}
	}
	switch {
	case f.Drop:
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return true
			}
		}
		panic(http.ErrAbortHandler) // net/http closes the connection quietly
	case f.Malformed:
		status := f.Status
		if status == 0 {
			status = http.StatusOK
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, `{"state":"ALLOW","idempotencyKey":`)
		return true
	case f.Status != 0:
		code := "internal_error"
		switch {
		case f.Status == http.StatusTooManyRequests:
			code = "too_many_requests"
		case f.Status == http.StatusUnauthorized:
			code = "unauthorized"
		case f.Status < 500:
			code = "invalid_request"
		}
		if f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, f.Status, code, "Fault injected by the emulator.")
		return true
	}
	return false
}

// serveAPI routes an authenticated API request. Path segments are split on
// the escaped path, then unescaped, so that "%2F" inside a user id is data.
func (e *Emulator) serveAPI(w http.ResponseWriter, r *http.Request) {
	segs, ok := splitPath(r.URL.EscapedPath())
	if !ok || len(segs) < 2 || segs[0] != "v1" {
		notFound(w, "No such endpoint.")
		return
	}
	n := len(segs)
	switch {
	case n == 2 && segs[1] == "validate":
		if allow(w, r, http.MethodPost) {
			e.validate(w, r)
		}
	case n == 2 && segs[1] == "users":
		if allow(w, r, http.MethodGet) {
			e.queryUsers(w, r)
		}
	case n == 3 && segs[1] == "users":
		// POST is the Ruby SDK's update user (and identify).
		if allow(w, r, http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete) && checkUserID(w, segs[2]) {
			e.serveUser(w, r, segs[2])
		}
	case n == 4 && segs[1] == "users" && segs[3] == "actions":
		if allow(w, r, http.MethodGet) && checkUserID(w, segs[2]) {
			e.queryActions(w, r, segs[2])
		}
	case n == 4 && segs[1] == "users" && segs[3] == "authenticators":
		if allow(w, r, http.MethodGet, http.MethodPost) && checkUserID(w, segs[2]) {
			e.serveAuthenticators(w, r, segs[2])
		}
	case n == 5 && segs[1] == "users" && segs[3] == "authenticators":
		if allow(w, r, http.MethodDelete) && checkUserID(w, segs[2]) {
			e.deleteAuthenticator(w, r, segs[2], segs[4])
		}
	case (n == 5 || n == 6) && segs[1] == "users" && segs[3] == "actions":
		if !checkUserID(w, segs[2]) {
			return
		}
		if !actionCodeRE.MatchString(segs[4]) {
			badRequest(w, "The action code must match ^[a-zA-Z0-9_-]{1,64}$.")
			return
		}
		if n == 5 {
			if allow(w, r, http.MethodPost) {
				e.track(w, r, segs[2], segs[4])
			}
			return
		}
		if allow(w, r, http.MethodGet, http.MethodPatch) {
			e.serveAction(w, r, actionKey{user: segs[2], action: segs[4], key: segs[5]})
		}
	case n == 3 && segs[1] == "__emulator" && segs[2] == "tracked":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, e.Tracked())
		}
	case n == 3 && segs[1] == "__emulator" && segs[2] == "outbox":
		if allow(w, r, http.MethodGet) {
			writeJSON(w, http.StatusOK, e.Outbox())
		}
	default:
		notFound(w, "No such endpoint.")
	}
}

func splitPath(escaped string) ([]string, bool) {
	segs := strings.Split(strings.TrimPrefix(escaped, "/"), "/")
	for i, s := range segs {
		u, err := url.PathUnescape(s)
		if err != nil || u == "" {
			return nil, false
		}
		segs[i] = u
	}
	return segs, true
}

func allow(w http.ResponseWriter, r *http.Request, methods ...string) bool {
	for _, m := range methods {
		if r.Method == m {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "Method "+r.Method+" is not allowed here.")
	return false
}

// checkUserID refuses user ids that are too long or not UTF-8 (JSON, and so
// the token's sub, could not carry them faithfully).
func checkUserID(w http.ResponseWriter, id string) bool {
	if len(id) > maxUserIDLen || !utf8.ValidString(id) {
		badRequest(w, fmt.Sprintf("The user id must be UTF-8 of at most %d bytes.", maxUserIDLen))
		return false
	}
	return true
}

// decodeBody reads a JSON object of at most 1 MiB into dst. Keys must be
// among fields, spelled exactly (encoding/json alone would accept "DeviceID"
// for "deviceId", hiding a client bug). On failure it answers the request and
// returns false.
func decodeBody(w http.ResponseWriter, r *http.Request, fields []string, dst any) bool {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		badRequest(w, "The Content-Type must be application/json.")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, "invalid_request", "The request body is larger than 1 MiB.")
		} else {
			badRequest(w, "The request body could not be read.")
		}
		return false
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || raw == nil {
		badRequest(w, "The request body must be a JSON object.")
		return false
	}
	for k := range raw {
		if !contains(fields, k) {
			if len(k) > 64 {
				k = k[:64] + "…"
			}
			badRequest(w, fmt.Sprintf("Unknown field %q.", k))
			return false
		}
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			badRequest(w, fmt.Sprintf("The field %q has the wrong type.", te.Field))
		} else {
			badRequest(w, "The request body is not valid JSON.")
		}
		return false
	}
	return true
}

var trackFields = []string{"redirectUrl", "redirectToSettings", "email", "phoneNumber", "username",
	"ipAddress", "userAgent", "deviceId", "scope", "custom", "idempotencyKey", "challengeId", "locale",
	"customDomain", // Node SDK 2.21
	"crypto",       // Go SDK v2
}

// notEnrolledWhy is logged when a challenge becomes ALLOW because the user
// has no authenticator.
const notEnrolledWhy = "CHALLENGE_REQUIRED became ALLOW: user not enrolled " +
	"(enrol: true on the rule, Config.AutoEnroll or the emulator command's default dev mode challenges such users)"

type trackResponse struct {
	State                       string   `json:"state"`
	IdempotencyKey              string   `json:"idempotencyKey"`
	URL                         string   `json:"url"`
	Token                       string   `json:"token"`
	IsEnrolled                  bool     `json:"isEnrolled"`
	EnrolledVerificationMethods []string `json:"enrolledVerificationMethods"`
	AllowedVerificationMethods  []string `json:"allowedVerificationMethods"`
	DefaultVerificationMethod   string   `json:"defaultVerificationMethod,omitempty"`
	RuleIDs                     []string `json:"ruleIds"`
}

// track handles POST /v1/users/{userId}/actions/{action}. A known
// idempotencyKey for the same user and action returns the stored action.
func (e *Emulator) track(w http.ResponseWriter, r *http.Request, userID, action string) {
	var req Request
	if !decodeBody(w, r, trackFields, &req) {
		return
	}
	if req.RedirectURL != "" && !validRedirect(req.RedirectURL) {
		badRequest(w, "redirectUrl must be an absolute http or https URL.")
		return
	}
	if len(req.IdempotencyKey) > maxKeyLen {
		badRequest(w, fmt.Sprintf("idempotencyKey is longer than %d bytes.", maxKeyLen))
		return
	}
	base := e.baseURL(r)

	e.mu.Lock()
	k := actionKey{user: userID, action: action, key: req.IdempotencyKey}
	if k.key == "" {
		k.key = newUUID()
	}
	rec, ok := e.actions[k]
	if !ok {
		u := e.userLocked(userID)
		fillProfile(u, &req)
		state, ruleIDs, enrol := e.rules.evaluate(action, &req, func(field, value string) bool {
			_, seen := u.seen[field+"\x00"+value]
			return seen
		})
		why := ""
		if state == StateChallengeRequired && !e.enrolled(u) && !enrol {
			state = StateAllow // Authsignal lets unenrolled users through unless a rule says otherwise
			why = " why=" + strconv.Quote(notEnrolledWhy)
		}
		now := e.now()
		rec = &actionRecord{key: k, state: state, ruleIDs: ruleIDs, req: req, enrol: enrol, allowed: e.rules.methods(action),
			createdAt: now, updatedAt: now}
		e.storeActionLocked(rec)
		if state == StateAllow {
			u.markSeen(&req)
		}
		e.logf("emulator: track user=%q action=%q state=%s rules=%v%s", userID, action, state, ruleIDs, why)
	}
	u := e.users[userID]
	methods := e.methodsOf(u)
	token := e.issueToken(rec, base)
	resp := trackResponse{
		State:                       rec.state,
		IdempotencyKey:              k.key,
		URL:                         base + "/challenge?token=" + url.QueryEscape(token),
		Token:                       token,
		IsEnrolled:                  e.enrolled(u),
		EnrolledVerificationMethods: methods,
		AllowedVerificationMethods:  e.allowedLocked(rec),
		RuleIDs:                     append([]string{}, rec.ruleIDs...),
	}
	if len(methods) > 0 {
		resp.DefaultVerificationMethod = methods[0]
	}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, resp)
}

// fillProfile keeps the contact details a track carries when the user has none.
func fillProfile(u *userRecord, req *Request) {
	if u.email == "" {
		u.email = req.Email
	}
	if u.phone == "" {
		u.phone = req.PhoneNumber
	}
	if u.username == "" {
		u.username = req.Username
	}
}

func validRedirect(s string) bool {
	u, err := url.Parse(s)
	return err == nil && len(s) <= maxURLLen && (u.Scheme == "http" || u.Scheme == "https") &&
		u.Host != "" && u.User == nil && validHost(u.Host)
}

// validHost accepts host[:port] spelled with DNS, IPv4 or bracketed IPv6
// characters only, so it can go into URLs and a CSP header as is.
func validHost(h string) bool {
	if h == "" || len(h) > 255 {
		return false
	}
	for _, c := range h {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]_", c)) {
			return false
		}
	}
	return true
}

// baseURL is where this emulator is reached: PublicURL, else the request's
// own scheme and Host.
func (e *Emulator) baseURL(r *http.Request) string {
	if e.cfg.PublicURL != "" {
		return e.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	host := r.Host
	if !validHost(host) {
		host = "localhost"
	}
	if h, p, err := net.SplitHostPort(host); err == nil && h == "" {
		host = net.JoinHostPort("localhost", p)
	}
	return scheme + "://" + host
}

func newUUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

type validateRequest struct {
	Token  string `json:"token"`
	UserID string `json:"userId"`
	Action string `json:"action"`
}

type validateResponse struct {
	IsValid            bool   `json:"isValid"`
	State              string `json:"state,omitempty"`
	StateUpdatedAt     string `json:"stateUpdatedAt,omitempty"`
	UserID             string `json:"userId,omitempty"`
	Action             string `json:"action,omitempty"`
	ActionCode         string `json:"actionCode,omitempty"` // deprecated twin of Action
	IdempotencyKey     string `json:"idempotencyKey,omitempty"`
	VerificationMethod string `json:"verificationMethod,omitempty"`
	Error              string `json:"error,omitempty"`
}

// validate handles POST /v1/validate. A token that is garbled, badly signed
// or expired, or that belongs to another user or action, is answered 200
// with isValid false and an error; otherwise the action's current state is
// reported, valid only once the challenge or review succeeded. Tokens are
// not single-use.
func (e *Emulator) validate(w http.ResponseWriter, r *http.Request) {
	var req validateRequest
	if !decodeBody(w, r, []string{"token", "userId", "action"}, &req) {
		return
	}
	if req.Token == "" {
		badRequest(w, "token is required.")
		return
	}
	c, err := verifyToken(e.secret, req.Token, e.now())
	switch {
	case err != nil:
		writeJSON(w, http.StatusOK, validateResponse{Error: err.Error()})
		return
	case req.UserID != "" && req.UserID != c.Sub:
		writeJSON(w, http.StatusOK, validateResponse{Error: "User is invalid."})
		return
	case req.Action != "" && req.Action != c.Other.ActionCode:
		writeJSON(w, http.StatusOK, validateResponse{Error: "Action is invalid."})
		return
	}
	e.mu.Lock()
	rec, ok := e.actions[c.key()]
	var resp validateResponse
	if ok {
		resp = validateResponse{
			IsValid:            rec.state == StateChallengeSucceeded || rec.state == StateReviewSucceeded,
			State:              rec.state,
			StateUpdatedAt:     rec.updatedAt.UTC().Format(timeLayout),
			UserID:             rec.key.user,
			Action:             rec.key.action,
			ActionCode:         rec.key.action,
			IdempotencyKey:     rec.key.key,
			VerificationMethod: rec.method,
		}
	}
	e.mu.Unlock()
	if !ok {
		resp.Error = "Action not found."
	}
	writeJSON(w, http.StatusOK, resp)
}

type actionResponse struct {
	State              string           `json:"state"`
	StateUpdatedAt     string           `json:"stateUpdatedAt"`
	CreatedAt          string           `json:"createdAt"`
	VerificationMethod string           `json:"verificationMethod,omitempty"`
	RuleIDs            []string         `json:"ruleIds"`
	Rules              []map[string]any `json:"rules"`
	Output             map[string]any   `json:"output"`
}

// patchableStates are the states PATCH may set, from any state: the API
// documents no transition graph, and the Node SDK's own tests move
// CHALLENGE_REQUIRED to REVIEW_REQUIRED. Only the secret key's holder can
// PATCH; what keeps a guard safe is that validate calls a token valid only
// in a succeeded state and only for its own user, action and idempotency
// key, and that nothing reachable from the hosted page sets
// CHALLENGE_SUCCEEDED without the right code.
var patchableStates = []string{StateAllow, StateBlock, StateChallengeRequired, StateChallengeSucceeded,
	StateChallengeFailed, StateReviewRequired, StateReviewSucceeded, StateReviewFailed}

// serveAction handles GET and PATCH /v1/users/{userId}/actions/{action}/{idempotencyKey}.
func (e *Emulator) serveAction(w http.ResponseWriter, r *http.Request, k actionKey) {
	var patch struct {
		State string `json:"state"`
	}
	if r.Method == http.MethodPatch && !decodeBody(w, r, []string{"state"}, &patch) {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	rec, ok := e.actions[k]
	if !ok {
		notFound(w, "No such action.")
		return
	}
	if patch.State == "REVIEW" {
		patch.State = StateReviewRequired // the alias some docs use
	}
	if r.Method == http.MethodPatch && !contains(patchableStates, patch.State) {
		badRequest(w, fmt.Sprintf("The state %.64q is not an action state.", patch.State))
		return
	}
	if r.Method == http.MethodPatch && patch.State != rec.state {
		e.setStateLocked(rec, patch.State, "")
		e.logf("emulator: update user=%q action=%q state=%s", k.user, k.action, patch.State)
	}
	resp := actionResponse{
		State:              rec.state,
		StateUpdatedAt:     rec.updatedAt.UTC().Format(timeLayout),
		CreatedAt:          rec.createdAt.UTC().Format(timeLayout),
		VerificationMethod: rec.method,
		RuleIDs:            append([]string{}, rec.ruleIDs...),
		Rules:              []map[string]any{},
		Output:             map[string]any{},
	}
	for _, id := range rec.ruleIDs {
		resp.Rules = append(resp.Rules, map[string]any{"ruleId": id, "name": id})
	}
	writeJSON(w, http.StatusOK, resp)
}
