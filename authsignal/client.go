package authsignal

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"
)

// Defaults of a Client.
const (
	// DefaultTimeout bounds each call, retries and back-off included. It is
	// the Go SDK's total timeout.
	DefaultTimeout = 10 * time.Second

	// DefaultRetries is how many times a failed attempt is retried, as in
	// the official SDKs.
	DefaultRetries = 2
)

const (
	// clientVersion is sent as X-Authsignal-Version, the header in which
	// the official SDKs (Node, Python, Ruby) send their own version.
	clientVersion = "0.1.0"
	userAgent     = "stepup-authsignal-go/" + clientVersion

	// maxBodyBytes caps what is read of any response body.
	maxBodyBytes = 1 << 20

	backoffBase = 100 * time.Millisecond
	backoffCap  = time.Second
)

// Region is an Authsignal data region; it selects the API base URL.
type Region string

// The Authsignal regions.
const (
	RegionUS Region = "us" // https://api.authsignal.com/v1, the default
	RegionAU Region = "au" // https://au.api.authsignal.com/v1
	RegionEU Region = "eu" // https://eu.api.authsignal.com/v1
	RegionCA Region = "ca" // https://ca.api.authsignal.com/v1
)

var regionBaseURLs = map[Region]string{
	RegionUS: "https://api.authsignal.com/v1",
	RegionAU: "https://au.api.authsignal.com/v1",
	RegionEU: "https://eu.api.authsignal.com/v1",
	RegionCA: "https://ca.api.authsignal.com/v1",
}

// BaseURL returns the API base URL of r, or "" when r is not a known region.
func (r Region) BaseURL() string { return regionBaseURLs[r] }

// Client calls the Authsignal Server API. Build it with NewClient; it is
// immutable and safe for concurrent use. Printing a Client never shows its
// secret key.
type Client struct {
	// secretKey is a closure so that fmt, walking the struct with any
	// verb, prints an address and never the key.
	secretKey func() string
	baseURL   string
	err       error // configuration error, returned by every call
	hc        *http.Client
	timeout   time.Duration
	retries   int
	backoff   func(retry int) time.Duration // delay before retry number retry (1-based)
}

// Option configures a Client.
type Option func(*Client)

// WithBaseURL sets the API base URL, including the version path, for
// example "http://127.0.0.1:8787/v1" for the emulator. An invalid URL makes
// every call fail with ErrInvalidBaseURL. The last of WithBaseURL and
// WithRegion wins.
func WithBaseURL(baseURL string) Option {
	return func(c *Client) { c.baseURL, c.err = parseBaseURL(baseURL) }
}

// WithRegion selects the base URL of an Authsignal region. An unknown region
// makes every call fail with ErrInvalidBaseURL. The last of WithBaseURL and
// WithRegion wins.
func WithRegion(r Region) Option {
	return func(c *Client) {
		c.baseURL, c.err = r.BaseURL(), nil
		if c.baseURL == "" {
			c.err = fmt.Errorf("%w: unknown region %.20q (want us, au, eu or ca)", ErrInvalidBaseURL, string(r))
		}
	}
}

// WithHTTPClient sets the HTTP client used for requests. A nil hc is
// ignored. The default client does not follow redirects, so a redirect
// surfaces as an *APIError; a custom client keeps its own redirect policy.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) {
		if hc != nil {
			c.hc = hc
		}
	}
}

// WithTimeout bounds each call, retries and back-off included. Optional.
// Default DefaultTimeout (10 s); d <= 0 keeps the default. A shorter
// deadline on the call's context wins.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// WithRetries sets how many times a failed attempt may be retried.
// Optional. Default DefaultRetries (2); 0 (or less) disables retries.
//
// What is retried: for GET, any transport failure and any 5xx answer; for
// POST, PATCH and DELETE, only a failure to connect (the request was never
// sent, so it cannot have been processed). A request that may have reached
// Authsignal is not sent twice: a duplicate track would create a second
// action. Nothing else (4xx, including 429) is retried. Back-off is
// exponential from 100 ms, capped at 1 s, with jitter, and never sleeps past
// the call's deadline.
func WithRetries(n int) Option {
	return func(c *Client) { c.retries = max(n, 0) }
}

// NewClient returns a client that authenticates with secretKey, against the
// US region unless an option says otherwise. It never panics: a missing key
// or a bad option makes every call return an error (ErrMissingSecretKey,
// ErrInvalidBaseURL).
func NewClient(secretKey string, opts ...Option) *Client {
	c := &Client{
		secretKey: func() string { return secretKey },
		baseURL:   RegionUS.BaseURL(),
		hc: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}},
		timeout: DefaultTimeout,
		retries: DefaultRetries,
		backoff: defaultBackoff,
	}
	for _, opt := range opts {
		if opt != nil {
			opt(c)
		}
	}
	if secretKey == "" {
		c.err = ErrMissingSecretKey
	}
	return c
}

// Err returns the configuration error that every call of c returns
// (ErrMissingSecretKey, ErrInvalidBaseURL), or nil. It lets a program, or
// stepup.New, refuse a client that cannot work at start-up instead of at
// the first request.
func (c *Client) Err() error { return c.err }

// String describes the client without its secret key.
func (c *Client) String() string {
	return fmt.Sprintf("authsignal.Client{baseURL: %q, secretKey: [REDACTED]}", c.baseURL)
}

// GoString is String: %#v never shows the secret key either.
func (c *Client) GoString() string { return c.String() }

// Format prints String for every verb, so that no verb (%d, %x, …) can make
// fmt walk the struct.
func (c *Client) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, c.String()) }

// Track tracks action for userID: POST /users/{userId}/actions/{action}.
func (c *Client) Track(ctx context.Context, userID, action string, req TrackRequest) (*TrackResponse, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := checkActionCode(action); err != nil {
		return nil, err
	}
	var out TrackResponse
	path := "/users/" + url.PathEscape(userID) + "/actions/" + url.PathEscape(action)
	if err := c.do(ctx, "track", http.MethodPost, path, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Validate validates a challenge token: POST /validate. A token that is not
// valid is not an error: the response says IsValid false.
func (c *Client) Validate(ctx context.Context, req ValidateRequest) (*ValidateResponse, error) {
	if req.Token == "" {
		return nil, ErrMissingToken
	}
	if req.Action != "" {
		if err := checkActionCode(req.Action); err != nil {
			return nil, err
		}
	}
	var out ValidateResponse
	if err := c.do(ctx, "validate", http.MethodPost, "/validate", req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// GetAction reads an action: GET /users/{userId}/actions/{action}/{idempotencyKey}.
func (c *Client) GetAction(ctx context.Context, userID, action, idempotencyKey string) (*Action, error) {
	path, err := actionPath(userID, action, idempotencyKey)
	if err != nil {
		return nil, err
	}
	var out Action
	if err := c.do(ctx, "get action", http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateAction sets the state of an action, for example to settle a review:
// PATCH /users/{userId}/actions/{action}/{idempotencyKey}.
func (c *Client) UpdateAction(ctx context.Context, userID, action, idempotencyKey string, state State) (*Action, error) {
	path, err := actionPath(userID, action, idempotencyKey)
	if err != nil {
		return nil, err
	}
	if state == "" {
		return nil, ErrMissingState
	}
	body := struct {
		State State `json:"state"`
	}{state}
	var out Action
	if err := c.do(ctx, "update action", http.MethodPatch, path, body, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// QueryUserActionsRequest filters QueryUserActions. Every field is
// optional.
type QueryUserActionsRequest struct {
	// Codes keeps actions with one of these codes; none keeps all.
	Codes []string
	// FromDate keeps actions created at or after it; the zero time lets
	// the server choose (30 days ago, which is also the earliest it allows).
	FromDate time.Time
	// State keeps actions in this state; "" keeps all.
	State State
}

// UserAction is one action of a QueryUserActions answer.
type UserAction struct {
	ActionCode                string `json:"actionCode"`
	IdempotencyKey            string `json:"idempotencyKey"`
	CreatedAt                 string `json:"createdAt,omitempty"`
	UpdatedAt                 string `json:"updatedAt,omitempty"`
	State                     State  `json:"state"`
	StateUpdatedAt            string `json:"stateUpdatedAt,omitempty"`
	VerificationMethod        string `json:"verificationMethod,omitempty"`
	VerifiedByAuthenticatorID string `json:"verifiedByAuthenticatorId,omitempty"`
	UserAgent                 string `json:"userAgent,omitempty"`
	IPAddress                 string `json:"ipAddress,omitempty"`
	CountryCode               string `json:"countryCode,omitempty"`
}

// QueryUserActions lists a user's actions: GET
// /users/{userId}/actions?codes=&fromDate=&state=.
func (c *Client) QueryUserActions(ctx context.Context, userID string, req QueryUserActionsRequest) ([]UserAction, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	for _, code := range req.Codes {
		if err := checkActionCode(code); err != nil {
			return nil, err
		}
	}
	q := url.Values{}
	if len(req.Codes) > 0 {
		q.Set("codes", strings.Join(req.Codes, ","))
	}
	if !req.FromDate.IsZero() {
		q.Set("fromDate", req.FromDate.UTC().Format(time.RFC3339Nano))
	}
	if req.State != "" {
		q.Set("state", string(req.State))
	}
	path := "/users/" + url.PathEscape(userID) + "/actions"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out []UserAction
	if err := c.do(ctx, "query user actions", http.MethodGet, path, nil, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// do runs one API call: body in (nil for no body) is sent as JSON, a 2xx
// body is decoded into out (nil to ignore it), and failed attempts are
// retried as documented on WithRetries.
func (c *Client) do(ctx context.Context, op, method, path string, in, out any) error {
	if c.err != nil {
		return c.err
	}
	var body []byte
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return fmt.Errorf("authsignal: %s: encoding request: %w", op, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()

	for retry := 0; ; retry++ {
		status, header, respBody, err := c.attempt(ctx, method, c.baseURL+path, body)
		switch {
		case err != nil:
			err = transportError(ctx, op, err)
		case status < 200 || status > 299:
			apiErr := parseAPIError(status, respBody)
			apiErr.RetryAfter = parseRetryAfter(header.Get("Retry-After"), time.Now())
			err = apiErr
		case out == nil:
			return nil
		default:
			if err := decodeResponse(respBody, out); err != nil {
				return fmt.Errorf("%w: %s: %w", ErrMalformedResponse, op, err)
			}
			return nil
		}
		if retry >= c.retries || ctx.Err() != nil || !retryable(method, status, err) {
			return err
		}
		if !sleep(ctx, c.backoff(retry+1)) {
			if cerr := ctx.Err(); cerr != nil {
				return fmt.Errorf("authsignal: %s: %w; last failure: %w", op, cerr, err)
			}
			return err // the deadline would pass during back-off
		}
	}
}

// attempt sends one request and reads at most maxBodyBytes+1 of the
// response body. err is non-nil only when no complete response was read.
func (c *Client) attempt(ctx context.Context, method, url string, body []byte) (int, http.Header, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, nil, err
	}
	req.SetBasicAuth(c.secretKey(), "")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("X-Authsignal-Version", clientVersion)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBodyBytes+1))
	if err != nil {
		return 0, nil, nil, err
	}
	return resp.StatusCode, resp.Header, b, nil
}

// retryable reports whether a failed attempt may be sent again: see
// WithRetries. status is 0 for a transport failure.
func retryable(method string, status int, err error) bool {
	if method == http.MethodGet {
		return status == 0 || status >= 500
	}
	return status == 0 && isDialError(err)
}

// isDialError reports whether err is a failure to connect, so that the
// request cannot have been sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func transportError(ctx context.Context, op string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w: %s: %w: %w", ErrTransport, op, cerr, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrTransport, op, err)
}

// sleep waits d and reports true, or reports false at once when ctx would
// expire first, or as soon as it does.
func sleep(ctx context.Context, d time.Duration) bool {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= d {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// defaultBackoff is exponential from backoffBase, capped at backoffCap, with
// "equal jitter": a random delay in [d/2, d].
func defaultBackoff(retry int) time.Duration {
	d := backoffCap
	if retry >= 1 && retry < 8 {
		d = min(backoffBase<<(retry-1), backoffCap)
	}
	return d/2 + rand.N(d/2+1)
}

// decodeResponse decodes a 2xx body of at most maxBodyBytes: one JSON
// array when out points to a slice, else one JSON object.
func decodeResponse(body []byte, out any) error {
	if len(body) > maxBodyBytes {
		return errors.New("body larger than 1 MiB")
	}
	if t := reflect.TypeOf(out); t.Kind() == reflect.Pointer && t.Elem().Kind() == reflect.Slice {
		if !startsWith(body, '[') {
			return errors.New("body is not a JSON array")
		}
	} else if !isJSONObject(body) {
		return errors.New("body is not a JSON object")
	}
	return json.Unmarshal(body, out)
}

// parseAPIError reads {"errorCode","error","errorDescription"} from a
// non-2xx body. Fields of another type are ignored; a body that is not a
// JSON object gets a generic description.
func parseAPIError(status int, body []byte) *APIError {
	e := &APIError{StatusCode: status}
	var fields map[string]json.RawMessage
	if !isJSONObject(body) || json.Unmarshal(body, &fields) != nil {
		e.Description = "response is not a JSON error object"
		return e
	}
	str := func(name string) string {
		var s string
		_ = json.Unmarshal(fields[name], &s)
		return s
	}
	e.Code = str("errorCode")
	if e.Code == "" {
		e.Code = str("error")
	}
	e.Description = str("errorDescription")
	return e
}

func isJSONObject(b []byte) bool { return startsWith(b, '{') }

// startsWith reports whether the first non-blank byte of b is c.
func startsWith(b []byte, c byte) bool {
	b = bytes.TrimLeft(b, " \t\r\n")
	return len(b) > 0 && b[0] == c
}

func checkUserID(userID string) error {
	if userID == "" || userID == "." || userID == ".." {
		return fmt.Errorf("%w: %.70q", ErrInvalidUserID, userID)
	}
	return nil
}

func checkActionCode(action string) error {
	if !ValidActionCode(action) {
		return fmt.Errorf("%w: %.70q", ErrInvalidActionCode, action)
	}
	return nil
}

func actionPath(userID, action, idempotencyKey string) (string, error) {
	if err := checkUserID(userID); err != nil {
		return "", err
	}
	if err := checkActionCode(action); err != nil {
		return "", err
	}
	if idempotencyKey == "" || idempotencyKey == "." || idempotencyKey == ".." {
		return "", fmt.Errorf("%w: %.70q", ErrInvalidIdempotencyKey, idempotencyKey)
	}
	return "/users/" + url.PathEscape(userID) + "/actions/" + url.PathEscape(action) +
		"/" + url.PathEscape(idempotencyKey), nil
}

// parseBaseURL checks that s is an absolute http(s) URL without user info,
// query or fragment, and returns it without a trailing slash.
func parseBaseURL(s string) (string, error) {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return "", fmt.Errorf("%w: does not parse", ErrInvalidBaseURL)
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("%w: scheme must be http or https", ErrInvalidBaseURL)
	case u.Host == "":
		return "", fmt.Errorf("%w: missing host", ErrInvalidBaseURL)
	case u.User != nil:
		return "", fmt.Errorf("%w: must not carry user info", ErrInvalidBaseURL)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("%w: must not carry a query or fragment", ErrInvalidBaseURL)
	}
	return strings.TrimRight(s, "/"), nil
}
