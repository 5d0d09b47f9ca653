package emulator

import (
	"fmt"
	"net/http"
	"strings"
	"time"
)

// queryWindow is how far back a query of actions may look: its default and
// its maximum, as the API documents.
const queryWindow = 30 * 24 * time.Hour

type queriedAction struct {
	ActionCode         string `json:"actionCode"`
	IdempotencyKey     string `json:"idempotencyKey"`
	CreatedAt          string `json:"createdAt"`
	UpdatedAt          string `json:"updatedAt"`
	State              string `json:"state"`
	StateUpdatedAt     string `json:"stateUpdatedAt"`
	VerificationMethod string `json:"verificationMethod,omitempty"`
	UserAgent          string `json:"userAgent,omitempty"`
	IPAddress          string `json:"ipAddress,omitempty"`
}

// queryActions handles GET /v1/users/{userId}/actions?codes&fromDate&state:
// the user's actions created since fromDate (RFC 3339; default and earliest
// 30 days ago), of the comma-separated action codes if given, in the state
// if given, newest first.
func (e *Emulator) queryActions(w http.ResponseWriter, r *http.Request, userID string) {
	q, ok := queryOf(w, r, "codes", "fromDate", "state")
	if !ok {
		return
	}
	var codes []string
	for _, c := range strings.Split(q.Get("codes"), ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !actionCodeRE.MatchString(c) {
			badRequest(w, "Each of codes must match ^[a-zA-Z0-9_-]{1,64}$.")
			return
		}
		codes = append(codes, c)
	}
	state := q.Get("state")
	if state == "REVIEW" {
		state = StateReviewRequired
	}
	if state != "" && !contains(patchableStates, state) {
		badRequest(w, fmt.Sprintf("state %.64q is not an action state.", state))
		return
	}
	now := e.now()
	from := now.Add(-queryWindow)
	if s := q.Get("fromDate"); s != "" {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			badRequest(w, "fromDate must be an ISO 8601 date-time, e.g. 2020-01-01T00:00:00Z.")
			return
		}
		if t.After(from) {
			from = t
		}
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	out := []queriedAction{}
	for el := e.order.Back(); el != nil; el = el.Prev() {
		rec := el.Value.(*actionRecord)
		if rec.key.user != userID || rec.createdAt.Before(from) ||
			(codes != nil && !contains(codes, rec.key.action)) || (state != "" && rec.state != state) {
			continue
		}
		out = append(out, queriedAction{
			ActionCode:         rec.key.action,
			IdempotencyKey:     rec.key.key,
			CreatedAt:          rec.createdAt.UTC().Format(timeLayout),
			UpdatedAt:          rec.updatedAt.UTC().Format(timeLayout),
			State:              rec.state,
			StateUpdatedAt:     rec.updatedAt.UTC().Format(timeLayout),
			VerificationMethod: rec.method,
			UserAgent:          rec.req.UserAgent,
			IPAddress:          rec.req.IPAddress,
		})
	}
	writeJSON(w, http.StatusOK, out)
}
