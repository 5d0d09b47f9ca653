package authsignal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
)

// Authenticator is a user's enrolled verification method, as returned by
// the authenticators endpoints.
type Authenticator struct {
	UserAuthenticatorID string `json:"userAuthenticatorId"`
	UserID              string `json:"userId,omitempty"`
	VerificationMethod  string `json:"verificationMethod"`
	Email               string `json:"email,omitempty"`
	PhoneNumber         string `json:"phoneNumber,omitempty"`
	Username            string `json:"username,omitempty"`
	DisplayName         string `json:"displayName,omitempty"`
	CreatedAt           string `json:"createdAt,omitempty"`
	VerifiedAt          string `json:"verifiedAt,omitempty"`
	LastVerifiedAt      string `json:"lastVerifiedAt,omitempty"`
}

// EnrollVerifiedAuthenticatorRequest is the body of POST
// /users/{userId}/authenticators: an email address or phone number the
// application has already verified. VerificationMethod is required
// ("EMAIL_OTP", "EMAIL_MAGIC_LINK", "SMS", "WHATSAPP", "AUTHENTICATOR_APP");
// Email goes with the email methods, PhoneNumber (E.164) with SMS and
// WhatsApp, OTPURI with AUTHENTICATOR_APP.
type EnrollVerifiedAuthenticatorRequest struct {
	VerificationMethod string `json:"verificationMethod"`
	Email              string `json:"email,omitempty"`
	PhoneNumber        string `json:"phoneNumber,omitempty"`
	OTPURI             string `json:"otpUri,omitempty"`
	IsDefault          bool   `json:"isDefault,omitempty"`
}

// EnrollVerifiedAuthenticatorResponse is the enrolled authenticator, with
// recovery codes when Authsignal issues them.
type EnrollVerifiedAuthenticatorResponse struct {
	Authenticator Authenticator `json:"authenticator"`
	RecoveryCodes []string      `json:"recoveryCodes,omitempty"`
}

// GetAuthenticators lists a user's authenticators: GET
// /users/{userId}/authenticators.
func (c *Client) GetAuthenticators(ctx context.Context, userID string) ([]Authenticator, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	var out []Authenticator
	if err := c.do(ctx, "get authenticators", http.MethodGet, "/users/"+url.PathEscape(userID)+"/authenticators", nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// EnrollVerifiedAuthenticator enrols an authenticator on the user's behalf,
// without a challenge: POST /users/{userId}/authenticators. Use it only for
// an email address or phone number the application has verified itself.
func (c *Client) EnrollVerifiedAuthenticator(ctx context.Context, userID string, req EnrollVerifiedAuthenticatorRequest) (*EnrollVerifiedAuthenticatorResponse, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if req.VerificationMethod == "" {
		return nil, ErrMissingVerificationMethod
	}
	var out EnrollVerifiedAuthenticatorResponse
	if err := c.do(ctx, "enroll verified authenticator", http.MethodPost, "/users/"+url.PathEscape(userID)+"/authenticators", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteAuthenticator removes one of a user's authenticators: DELETE
// /users/{userId}/authenticators/{userAuthenticatorId}. Removing the last
// one leaves the user unenrolled, and Authsignal then lets such a user's
// actions through unless a rule says otherwise.
func (c *Client) DeleteAuthenticator(ctx context.Context, userID, userAuthenticatorID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if userAuthenticatorID == "" || userAuthenticatorID == "." || userAuthenticatorID == ".." {
		return fmt.Errorf("%w: %.70q", ErrInvalidAuthenticatorID, userAuthenticatorID)
	}
	path := "/users/" + url.PathEscape(userID) + "/authenticators/" + url.PathEscape(userAuthenticatorID)
	return c.do(ctx, "delete authenticator", http.MethodDelete, path, nil, nil)
}
