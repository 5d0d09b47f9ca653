package emulator

import (
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	defaultQueryLimit = 100
	maxQueryLimit     = 1000
)

// profile is what a user record holds for the users and authenticators
// endpoints beyond what the hosted page needs.
type profile struct {
	createdAt     time.Time
	emailVerified bool
	phoneVerified bool
	locale        string
	auths         []*authenticator // kept in step with userRecord.methods by authsLocked
}

// userFields are the keys an update user body may carry: those of the API
// reference and of the official SDKs (Node 2.21 UserAttributes, Go v2,
// Python, Ruby).
var userFields = []string{"email", "emailVerified", "phoneNumber", "phoneNumberVerified", "username",
	"displayName", "custom", "locale", "defaultVerificationMethod"}

type userPatch struct {
	Email                     *string        `json:"email"`
	EmailVerified             *bool          `json:"emailVerified"`
	PhoneNumber               *string        `json:"phoneNumber"`
	PhoneNumberVerified       *bool          `json:"phoneNumberVerified"`
	Username                  *string        `json:"username"`
	DisplayName               *string        `json:"displayName"`
	Custom                    map[string]any `json:"custom"`
	Locale                    *string        `json:"locale"`
	DefaultVerificationMethod *string        `json:"defaultVerificationMethod"`
}

type userResponse struct {
	UserID                      string         `json:"userId,omitempty"` // update user answers it
	IsEnrolled                  bool           `json:"isEnrolled"`
	Email                       string         `json:"email,omitempty"`
	EmailVerified               bool           `json:"emailVerified"`
	PhoneNumber                 string         `json:"phoneNumber,omitempty"`
	PhoneNumberVerified         bool           `json:"phoneNumberVerified"`
	Username                    string         `json:"username,omitempty"`
	DisplayName                 string         `json:"displayName,omitempty"`
	Locale                      string         `json:"locale,omitempty"`
	EnrolledVerificationMethods []string       `json:"enrolledVerificationMethods"`
	AllowedVerificationMethods  []string       `json:"allowedVerificationMethods"`
	DefaultVerificationMethod   string         `json:"defaultVerificationMethod,omitempty"`
	Custom                      map[string]any `json:"custom,omitempty"`
}

// serveUser handles GET, PATCH, POST (the Ruby SDK's update) and DELETE
// /v1/users/{userId}. An unknown user reads as not enrolled; an update
// creates it. DELETE removes the user and its authenticators, and its
// actions only with ?actions=true, as the API documents; it always succeeds.
func (e *Emulator) serveUser(w http.ResponseWriter, r *http.Request, id string) {
	var patch userPatch
	update := r.Method == http.MethodPatch || r.Method == http.MethodPost
	if update && !decodeBody(w, r, userFields, &patch) {
		return
	}
	var dropActions bool
	if r.Method == http.MethodDelete {
		var ok bool
		if dropActions, ok = boolParam(w, r, "actions"); !ok {
			return
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.users[id]
	switch {
	case r.Method == http.MethodDelete:
		e.deleteUserLocked(u, id, dropActions)
		writeJSON(w, http.StatusOK, map[string]bool{"success": true})
		return
	case update:
		if m := patch.DefaultVerificationMethod; m != nil && !contains(e.methodsOf(u), *m) {
			badRequest(w, fmt.Sprintf("defaultVerificationMethod %.32q is not enrolled for this user.", *m))
			return
		}
		u = e.userLocked(id)
		applyPatch(u, &patch)
	}
	resp := e.userResponseLocked(u)
	if update {
		resp.UserID = id
	}
	writeJSON(w, http.StatusOK, resp)
}

// applyPatch changes what the patch names. A new email or phone number is
// unverified unless the patch says it is verified.
func applyPatch(u *userRecord, p *userPatch) {
	if p.Email != nil && *p.Email != u.email {
		u.email, u.profile.emailVerified = *p.Email, false
	}
	if p.EmailVerified != nil {
		u.profile.emailVerified = *p.EmailVerified
	}
	if p.PhoneNumber != nil && *p.PhoneNumber != u.phone {
		u.phone, u.profile.phoneVerified = *p.PhoneNumber, false
	}
	if p.PhoneNumberVerified != nil {
		u.profile.phoneVerified = *p.PhoneNumberVerified
	}
	if p.Username != nil {
		u.username = *p.Username
	}
	if p.DisplayName != nil {
		u.displayName = *p.DisplayName
	}
	if p.Locale != nil {
		u.profile.locale = *p.Locale
	}
	if p.Custom != nil {
		u.custom = p.Custom
	}
	if m := p.DefaultVerificationMethod; m != nil && contains(u.methods, *m) {
		u.methods = moveFirst(u.methods, *m)
	}
}

func (e *Emulator) deleteUserLocked(u *userRecord, id string, dropActions bool) {
	if u != nil {
		if u.elem != nil {
			e.userOrder.Remove(u.elem)
		}
		delete(e.users, id)
	}
	if dropActions {
		for el := e.order.Front(); el != nil; {
			next := el.Next()
			if rec := el.Value.(*actionRecord); rec.key.user == id {
				e.removeActionLocked(rec)
			}
			el = next
		}
	}
	e.logf("emulator: delete user=%q actions=%t", id, dropActions)
}

func (e *Emulator) userResponseLocked(u *userRecord) userResponse {
	methods := e.methodsOf(u)
	resp := userResponse{
		IsEnrolled:                  e.enrolled(u),
		EnrolledVerificationMethods: methods,
		AllowedVerificationMethods:  []string{MethodEmailOTP, MethodSMS},
	}
	if len(methods) > 0 {
		resp.DefaultVerificationMethod = methods[0]
	}
	if u != nil {
		resp.Email, resp.PhoneNumber, resp.Username, resp.DisplayName = u.email, u.phone, u.username, u.displayName
		resp.EmailVerified, resp.PhoneNumberVerified = u.profile.emailVerified, u.profile.phoneVerified
		resp.Locale = u.profile.locale
		resp.Custom = copyMap(u.custom)
	}
	return resp
}

type queriedUser struct {
	UserID                      string   `json:"userId"`
	Email                       string   `json:"email,omitempty"`
	EmailVerified               bool     `json:"emailVerified"`
	PhoneNumber                 string   `json:"phoneNumber,omitempty"`
	PhoneNumberVerified         bool     `json:"phoneNumberVerified"`
	Username                    string   `json:"username,omitempty"`
	DisplayName                 string   `json:"displayName,omitempty"`
	IsEnrolled                  bool     `json:"isEnrolled"`
	EnrolledVerificationMethods []string `json:"enrolledVerificationMethods"`
	CreatedAt                   string   `json:"createdAt"`
}

type queryUsersResponse struct {
	Users               []queriedUser `json:"users"`
	LastEvaluatedUserID string        `json:"lastEvaluatedUserId,omitempty"`
	TokenPayload        *claims       `json:"tokenPayload,omitempty"`
}

// queryUsers handles GET /v1/users?username&email&phoneNumber&token&limit&
// lastEvaluatedUserId. Filters are exact and ANDed; token (a token this
// emulator issued) selects its user and is answered as tokenPayload. Users
// come in user id order, limit (default 100, at most 1000) at a time;
// lastEvaluatedUserId is set only when more remain.
func (e *Emulator) queryUsers(w http.ResponseWriter, r *http.Request) {
	q, ok := queryOf(w, r, "username", "email", "phoneNumber", "token", "limit", "lastEvaluatedUserId")
	if !ok {
		return
	}
	limit := defaultQueryLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxQueryLimit {
			badRequest(w, fmt.Sprintf("limit must be an integer from 1 to %d.", maxQueryLimit))
			return
		}
		limit = n
	}
	var resp queryUsersResponse
	tokenUser, hasToken := "", q.Has("token")
	if hasToken {
		c, err := verifyToken(e.secret, q.Get("token"), e.now())
		if err != nil {
			badRequest(w, "token is invalid or has expired.")
			return
		}
		tokenUser, resp.TokenPayload = c.Sub, &c
	}
	match := func(u *userRecord) bool {
		eq := func(param, v string) bool { return !q.Has(param) || q.Get(param) == v }
		return eq("username", u.username) && eq("email", u.email) && eq("phoneNumber", u.phone) &&
			(!hasToken || u.id == tokenUser)
	}
	after := q.Get("lastEvaluatedUserId")

	e.mu.Lock()
	defer e.mu.Unlock()
	var hits []*userRecord
	for _, u := range e.users {
		if (after == "" || u.id > after) && match(u) {
			hits = append(hits, u)
		}
	}
	sort.Slice(hits, func(i, j int) bool { return hits[i].id < hits[j].id })
	if len(hits) > limit {
		hits = hits[:limit]
		resp.LastEvaluatedUserID = hits[limit-1].id
	}
	resp.Users = make([]queriedUser, 0, len(hits))
	for _, u := range hits {
		resp.Users = append(resp.Users, queriedUser{
			UserID: u.id, Email: u.email, EmailVerified: u.profile.emailVerified,
			PhoneNumber: u.phone, PhoneNumberVerified: u.profile.phoneVerified,
			Username: u.username, DisplayName: u.displayName,
			IsEnrolled: e.enrolled(u), EnrolledVerificationMethods: e.methodsOf(u),
			CreatedAt: u.profile.createdAt.UTC().Format(timeLayout),
		})
	}
	writeJSON(w, http.StatusOK, resp)
}

// queryOf parses the query string, refusing a malformed one, a parameter
// given twice, and parameters outside known.
func queryOf(w http.ResponseWriter, r *http.Request, known ...string) (url.Values, bool) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		badRequest(w, "The query string does not parse.")
		return nil, false
	}
	for k, vs := range q {
		switch {
		case !contains(known, k):
			badRequest(w, fmt.Sprintf("Unknown query parameter %.64q.", k))
			return nil, false
		case len(vs) > 1:
			badRequest(w, fmt.Sprintf("The query parameter %q is given more than once.", k))
			return nil, false
		}
	}
	return q, true
}

// boolParam reads an optional true/false query parameter.
func boolParam(w http.ResponseWriter, r *http.Request, name string) (bool, bool) {
	q, ok := queryOf(w, r, name)
	if !ok {
		return false, false
	}
	switch strings.ToLower(q.Get(name)) {
	case "", "false":
		return false, true
	case "true":
		return true, true
	}
	badRequest(w, fmt.Sprintf("The query parameter %q must be true or false.", name))
	return false, false
}

// moveFirst returns list with s moved to the front.
func moveFirst(list []string, s string) []string {
	out := append(make([]string, 0, len(list)), s)
	for _, v := range list {
		if v != s {
			out = append(out, v)
		}
	}
	return out
}
