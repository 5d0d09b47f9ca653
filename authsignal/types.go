package authsignal

import (
	"encoding/json"
	"regexp"
)

// State is the state of an Authsignal action. Unknown states returned by the
// API are kept verbatim; callers must treat any state they do not recognise
// as "no".
type State string

// The states an action can be in.
const (
	StateAllow              State = "ALLOW"
	StateBlock              State = "BLOCK"
	StateChallengeRequired  State = "CHALLENGE_REQUIRED"
	StateReviewRequired     State = "REVIEW_REQUIRED"
	StateChallengeSucceeded State = "CHALLENGE_SUCCEEDED"
	StateChallengeFailed    State = "CHALLENGE_FAILED"
	StateReviewSucceeded    State = "REVIEW_SUCCEEDED"
	StateReviewFailed       State = "REVIEW_FAILED"

	// stateReviewAlias is the spelling some Authsignal docs use for
	// REVIEW_REQUIRED; decoding normalises it.
	stateReviewAlias State = "REVIEW"
)

// Known reports whether s is one of the documented states.
func (s State) Known() bool {
	switch s {
	case StateAllow, StateBlock, StateChallengeRequired, StateReviewRequired,
		StateChallengeSucceeded, StateChallengeFailed, StateReviewSucceeded, StateReviewFailed:
		return true
	}
	return false
}

// UnmarshalJSON decodes a state, normalising the "REVIEW" alias to
// REVIEW_REQUIRED. Any other value is kept as sent.
func (s *State) UnmarshalJSON(b []byte) error {
	var v string
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if State(v) == stateReviewAlias {
		v = string(StateReviewRequired)
	}
	*s = State(v)
	return nil
}

var actionCodeRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ValidActionCode reports whether code is a well-formed Authsignal action
// code: 1 to 64 characters from [a-zA-Z0-9_-].
func ValidActionCode(code string) bool { return actionCodeRE.MatchString(code) }

// TrackRequest is the body of POST /users/{userId}/actions/{action}. Every
// field is optional.
type TrackRequest struct {
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
	// CustomDomain is the custom domain the pre-built UI is served on, as
	// the Node SDK sends it.
	CustomDomain string `json:"customDomain,omitempty"`
	// Crypto describes a crypto transaction for rules, as the Go SDK sends it.
	Crypto *Crypto `json:"crypto,omitempty"`
}

// Crypto is the crypto transaction a track may describe.
type Crypto struct {
	Asset          string   `json:"asset,omitempty"`
	Address        string   `json:"address,omitempty"`
	TxnHash        string   `json:"txnHash,omitempty"`
	AssetAmount    *float64 `json:"assetAmount,omitempty"`
	AssetAmountUSD *float64 `json:"assetAmountUsd,omitempty"`
}

// TrackResponse is Authsignal's answer to a track call.
type TrackResponse struct {
	State                       State    `json:"state"`
	IdempotencyKey              string   `json:"idempotencyKey"`
	URL                         string   `json:"url"`
	Token                       string   `json:"token"`
	IsEnrolled                  bool     `json:"isEnrolled"`
	EnrolledVerificationMethods []string `json:"enrolledVerificationMethods,omitempty"`
	AllowedVerificationMethods  []string `json:"allowedVerificationMethods,omitempty"`
	DefaultVerificationMethod   string   `json:"defaultVerificationMethod,omitempty"`
	RuleIDs                     []string `json:"ruleIds,omitempty"`
}

// ValidateRequest is the body of POST /validate. UserID and Action are
// optional; when set, Authsignal checks that the token belongs to them.
type ValidateRequest struct {
	Token  string `json:"token"`
	UserID string `json:"userId,omitempty"`
	Action string `json:"action,omitempty"`
}

// ValidateResponse is Authsignal's answer to a validate call. Action is
// filled from "action" or, when absent, from the deprecated "actionCode".
type ValidateResponse struct {
	IsValid            bool   `json:"isValid"`
	State              State  `json:"state,omitempty"`
	StateUpdatedAt     string `json:"stateUpdatedAt,omitempty"`
	UserID             string `json:"userId,omitempty"`
	Action             string `json:"action,omitempty"`
	IdempotencyKey     string `json:"idempotencyKey,omitempty"`
	VerificationMethod string `json:"verificationMethod,omitempty"`
	Error              string `json:"error,omitempty"`
}

// UnmarshalJSON accepts both "action" and the deprecated "actionCode".
func (v *ValidateResponse) UnmarshalJSON(b []byte) error {
	type plain ValidateResponse
	var aux struct {
		plain
		ActionCode string `json:"actionCode"`
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	*v = ValidateResponse(aux.plain)
	if v.Action == "" {
		v.Action = aux.ActionCode
	}
	return nil
}

// Action is an action as returned by GET/PATCH
// /users/{userId}/actions/{action}/{idempotencyKey}.
type Action struct {
	State              State            `json:"state"`
	StateUpdatedAt     string           `json:"stateUpdatedAt,omitempty"`
	CreatedAt          string           `json:"createdAt,omitempty"`
	VerificationMethod string           `json:"verificationMethod,omitempty"`
	RuleIDs            []string         `json:"ruleIds,omitempty"`
	Rules              []map[string]any `json:"rules,omitempty"`
	Output             map[string]any   `json:"output,omitempty"`
}
