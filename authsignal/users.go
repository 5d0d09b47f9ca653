package authsignal

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
)

// User is a user as returned by GET and PATCH /users/{userId}. UserID is
// filled by UpdateUser only: GET does not send it.
type User struct {
	UserID                      string         `json:"userId,omitempty"`
	IsEnrolled                  bool           `json:"isEnrolled"`
	Email                       string         `json:"email,omitempty"`
	EmailVerified               bool           `json:"emailVerified,omitempty"`
	PhoneNumber                 string         `json:"phoneNumber,omitempty"`
	PhoneNumberVerified         bool           `json:"phoneNumberVerified,omitempty"`
	Username                    string         `json:"username,omitempty"`
	DisplayName                 string         `json:"displayName,omitempty"`
	Locale                      string         `json:"locale,omitempty"`
	EnrolledVerificationMethods []string       `json:"enrolledVerificationMethods,omitempty"`
	AllowedVerificationMethods  []string       `json:"allowedVerificationMethods,omitempty"`
	DefaultVerificationMethod   string         `json:"defaultVerificationMethod,omitempty"`
	Custom                      map[string]any `json:"custom,omitempty"`
}

// UpdateUserRequest is the body of PATCH /users/{userId}. A nil field is
// not sent and leaves the user's value unchanged; a non-nil one is sent as
// is, so String("") clears a field and Bool(false) sends false. Likewise a
// non-nil Custom, even empty, is sent and replaces the custom attributes:
// map[string]any{} clears them.
//
// EmailVerified (PhoneNumberVerified) true tells Authsignal that the new
// email address (phone number) was verified by the application, so that its
// email (SMS) authenticators move to it.
type UpdateUserRequest struct {
	Email                     *string        `json:"email,omitempty"`
	EmailVerified             *bool          `json:"emailVerified,omitempty"`
	PhoneNumber               *string        `json:"phoneNumber,omitempty"`
	PhoneNumberVerified       *bool          `json:"phoneNumberVerified,omitempty"`
	Username                  *string        `json:"username,omitempty"`
	DisplayName               *string        `json:"displayName,omitempty"`
	Locale                    *string        `json:"locale,omitempty"`
	DefaultVerificationMethod *string        `json:"defaultVerificationMethod,omitempty"`
	Custom                    map[string]any `json:"custom,omitempty"`
}

// MarshalJSON leaves out nil fields and sends an empty but non-nil Custom
// as {}.
func (r UpdateUserRequest) MarshalJSON() ([]byte, error) {
	type plain UpdateUserRequest
	out := struct {
		plain
		Custom *map[string]any `json:"custom,omitempty"`
	}{plain: plain(r)}
	if r.Custom != nil {
		out.Custom = &r.Custom
	}
	return json.Marshal(out)
}

// String returns a pointer to s, for the optional fields of
// UpdateUserRequest: String("") clears a field.
func String(s string) *string { return &s }

// Bool returns a pointer to b, for the optional fields of UpdateUserRequest.
func Bool(b bool) *bool { return &b }

// GetUser reads a user: GET /users/{userId}.
func (c *Client) GetUser(ctx context.Context, userID string) (*User, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	var out User
	if err := c.do(ctx, "get user", http.MethodGet, "/users/"+url.PathEscape(userID), nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateUser updates a user's attributes: PATCH /users/{userId}. Only the
// non-nil fields of req are sent.
func (c *Client) UpdateUser(ctx context.Context, userID string, req UpdateUserRequest) (*User, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	var out User
	if err := c.do(ctx, "update user", http.MethodPatch, "/users/"+url.PathEscape(userID), req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteUser deletes a user and its authenticators: DELETE /users/{userId}.
// The user's actions are kept, so a token of a completed challenge still
// validates; DeleteUserAndActions deletes them too.
func (c *Client) DeleteUser(ctx context.Context, userID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return c.do(ctx, "delete user", http.MethodDelete, "/users/"+url.PathEscape(userID), nil, nil)
}

// DeleteUserAndActions deletes a user, its authenticators and its actions:
// DELETE /users/{userId}?actions=true.
func (c *Client) DeleteUserAndActions(ctx context.Context, userID string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return c.do(ctx, "delete user", http.MethodDelete, "/users/"+url.PathEscape(userID)+"?actions=true", nil, nil)
}

// QueryUsersRequest filters QueryUsers. Every field is optional; the
// filters given must all hold.
type QueryUsersRequest struct {
	Username    string
	Email       string
	PhoneNumber string
	// Token selects the user a client token belongs to; the response's
	// TokenPayload holds its claims.
	Token string
	// Limit is the page size; 0 lets the server choose.
	Limit int
	// LastEvaluatedUserID continues after a previous page: pass its
	// QueryUsersResponse.LastEvaluatedUserID.
	LastEvaluatedUserID string
}

// QueriedUser is one user of a QueryUsers page.
type QueriedUser struct {
	UserID                      string   `json:"userId"`
	Email                       string   `json:"email,omitempty"`
	EmailVerified               bool     `json:"emailVerified,omitempty"`
	PhoneNumber                 string   `json:"phoneNumber,omitempty"`
	PhoneNumberVerified         bool     `json:"phoneNumberVerified,omitempty"`
	Username                    string   `json:"username,omitempty"`
	DisplayName                 string   `json:"displayName,omitempty"`
	IsEnrolled                  bool     `json:"isEnrolled,omitempty"`
	EnrolledVerificationMethods []string `json:"enrolledVerificationMethods,omitempty"`
	CreatedAt                   string   `json:"createdAt,omitempty"`
}

// QueryUsersResponse is a page of users. LastEvaluatedUserID is empty on
// the last page.
type QueryUsersResponse struct {
	Users               []QueriedUser  `json:"users"`
	LastEvaluatedUserID string         `json:"lastEvaluatedUserId,omitempty"`
	TokenPayload        map[string]any `json:"tokenPayload,omitempty"`
}

// QueryUsers finds users: GET /users?username=&email=&phoneNumber=&token=
// &limit=&lastEvaluatedUserId=. Empty fields of req are not sent.
func (c *Client) QueryUsers(ctx context.Context, req QueryUsersRequest) (*QueryUsersResponse, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("username", req.Username)
	set("email", req.Email)
	set("phoneNumber", req.PhoneNumber)
	set("token", req.Token)
	if req.Limit > 0 {
		q.Set("limit", strconv.Itoa(req.Limit))
	}
	set("lastEvaluatedUserId", req.LastEvaluatedUserID)
	path := "/users"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out QueryUsersResponse
	if err := c.do(ctx, "query users", http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
