package stepup

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/stepupkit/stepup/authsignal"
)

// Policy maps one route of the application to an Authsignal action.
type Policy struct {
	// Method is the HTTP method as the router dispatches it, or "*" for
	// every method. A policy for GET also covers HEAD.
	Method string
	// Route is the pattern as registered with the router: "/admin/users/:id"
	// in echo, "/admin/users/{id}" in a ServeMux (without the method).
	Route string
	// Action is the Authsignal action code tracked for this route.
	Action string
	// Remember, when positive, lets a user who completed a challenge for
	// this action skip further challenges for it during this long. The
	// expiry is fixed at the challenge; activity does not extend it.
	Remember time.Duration
	// Review, when positive, parks a request that Authsignal answers with
	// REVIEW_REQUIRED (also spelled REVIEW) for this long, waiting for a
	// reviewer, instead of refusing it with Config.ReviewStatus: the
	// browser is sent to a status page under the callback, an API client
	// gets a 202 with its URL, and once the action is REVIEW_SUCCEEDED the
	// parked request runs once, in the session that made it (docs/review.md).
	// Zero keeps the refusal.
	Review time.Duration
	// Attributes are sent to Authsignal as custom data for its rules.
	Attributes []Attribute
	// Custom is a Go hook for attributes a policy file cannot describe. Its
	// values are merged over Attributes. body is the buffered request body
	// (nil for requests without one). An error refuses the request. It runs
	// again on the request that runs after a challenge (the token retry,
	// the replay, the GET pass), which runs only when the hook returns what
	// it returned when the request was judged: make it a function of the
	// request, not of the time or of changing state. A replay presents the
	// live callback's cookies, User-Agent and remote address.
	Custom func(r *http.Request, body []byte) (map[string]any, error)
	// FailOpen lets the request through when Authsignal cannot be reached
	// or answers garbage. The default, false, fails closed with a 503. It
	// is about provider failures only: when Authsignal answers, Unenrolled
	// decides for a user without a second factor, whatever FailOpen says.
	FailOpen bool
	// Unenrolled says what happens when Authsignal answers ALLOW with
	// isEnrolled false: the user has no authenticator, so no rule could
	// challenge them, and Authsignal cannot tell the guard whether a rule
	// would have. Optional. Default UnenrolledDeny; New refuses any value
	// but UnenrolledDeny, UnenrolledEnroll and UnenrolledAllow (or "").
	Unenrolled string
	// Methods are the verification methods the action accepts, in
	// Authsignal's spelling (MethodPasskey "PASSKEY", MethodSMS "SMS", …).
	// Optional. Default empty: whatever method Authsignal accepted. A proof
	// made with another method (or with none reported) is refused with
	// ErrWrongMethod at the callback and at the API retry, and a Remember
	// grant earned with another method does not let the request through.
	// New refuses unknown or repeated names. See methods.go.
	Methods []string
}

// The choices for Policy.Unenrolled.
const (
	// UnenrolledDeny (the default) refuses with a 403 that tells the user
	// to set up two-step verification first (ErrUnenrolled); nothing runs.
	// Refusing is always safe: whoever holds a stolen session cannot bind
	// a factor of their own through the guard.
	UnenrolledDeny = "deny"
	// UnenrolledEnroll treats the answer as a challenge: the request is
	// parked exactly as for CHALLENGE_REQUIRED and the browser sent to
	// Authsignal's URL, where the user enrols a first authenticator; once
	// the callback validates the token (CHALLENGE_SUCCEEDED, as after any
	// challenge) the parked request runs once. API clients get the 401
	// challenge. Whoever holds the session is who enrols: choose it only
	// where the enrolment cannot bind a factor of an attacker's choosing
	// (the user's verified email or phone number already set in
	// Authsignal, where the code goes).
	UnenrolledEnroll = "enroll"
	// UnenrolledAllow lets the request through without a second factor,
	// as an explicit choice: reported as EventAllow with reason
	// "unenrolled" (logged at Warn), Verification.How HowUnenrolled. It
	// never earns a Remember grant.
	UnenrolledAllow = "allow"
)

// Source says where an Attribute's value is read from.
type Source string

// The sources an Attribute can read from.
const (
	FromForm   Source = "form"   // a form field as r.FormValue reads it: the urlencoded body (POST, PUT, PATCH), then the query
	FromJSON   Source = "json"   // a JSON body field; Key is a dotted path such as "payee.iban", matched with Unicode case folding like encoding/json
	FromPath   Source = "path"   // a path parameter of the route
	FromQuery  Source = "query"  // a query parameter
	FromHeader Source = "header" // a request header, sent once; parked and replayed with the request, as judged
)

// Whatever the Source, the value the rules see is the value every standard
// reader of the request gets: for form, json, path and query attributes the
// guard looks for the key in the query, the form body, the JSON body and the
// path parameters (keys compared with Unicode case folding, as
// encoding/json and echo's binder compare them), and refuses the request
// with a 400 before tracking when two of them disagree, when the request
// could be parsed differently by another reader, or when a value does not
// convert to the attribute's Type. See the package documentation.

// Attribute is one custom attribute sent to Authsignal with the track call.
type Attribute struct {
	Name string // the name Authsignal's rules see, as custom.<Name>
	From Source
	Key  string // field, parameter or header name; a dotted path for JSON
	// Type converts the value; "" is TypeString. A value that does not
	// convert refuses the request with a 400: the rules never see "absent"
	// where a handler could see a value.
	Type ValueType
	// Display shows the value to the user as part of what they approve:
	// in the API 401 challenge JSON under "display" (the value as sent to
	// Authsignal, typed) and on the confirmation page (Config.ConfirmPage).
	// Authsignal receives it in custom as every attribute.
	Display bool
}

// ValueType is the type an Attribute's value is converted to. Its values
// are what policy files spell.
type ValueType string

// The types an Attribute's value can have.
const (
	TypeString ValueType = "string" // the value as read (the default)
	TypeNumber ValueType = "number" // the JSON number grammar only: no spaces, "+", hex, underscores, leading zeros, NaN or Inf
	TypeBool   ValueType = "bool"   // as strconv.ParseBool
)

func clonePolicies(ps []Policy) []Policy {
	out := append([]Policy(nil), ps...)
	for i := range out {
		out[i].Attributes = append([]Attribute(nil), out[i].Attributes...)
		out[i].Methods = append([]string(nil), out[i].Methods...)
	}
	return out
}

var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodOptions: true,
	http.MethodConnect: true, http.MethodTrace: true,
}

func validMethod(m string) bool { return knownMethods[m] }

type routeKey struct{ method, route string }

// rule is a compiled Policy.
type rule struct {
	Policy
	headers []string  // the canonical names of the headers its header attributes read, in order
	methods MethodSet // Methods as a set
}

// readsHeader reports whether a header attribute of r reads the header of
// canonical name k.
func (r *rule) readsHeader(k string) bool { return r != nil && slices.Contains(r.headers, k) }

func (p Policy) compile() (*rule, error) {
	if p.Method != "*" && !validMethod(p.Method) {
		return nil, fmt.Errorf("unknown method %q (use an upper-case HTTP method or \"*\")", p.Method)
	}
	if err := checkRoute(p.Route); err != nil {
		return nil, err
	}
	if !authsignal.ValidActionCode(p.Action) {
		return nil, fmt.Errorf("action code %q does not match ^[a-zA-Z0-9_-]{1,64}$", p.Action)
	}
	if p.Remember < 0 {
		return nil, fmt.Errorf("negative remember %v", p.Remember)
	}
	if p.Review < 0 {
		return nil, fmt.Errorf("negative review %v", p.Review)
	}
	switch p.Unenrolled {
	case "":
		p.Unenrolled = UnenrolledDeny
	case UnenrolledDeny, UnenrolledEnroll, UnenrolledAllow:
	default:
		return nil, fmt.Errorf("unenrolled %q: use %q (the default), %q or %q",
			p.Unenrolled, UnenrolledDeny, UnenrolledEnroll, UnenrolledAllow)
	}
	if err := checkMethods(p.Methods); err != nil {
		return nil, err
	}
	for i, a := range p.Attributes {
		if err := a.check(); err != nil {
			return nil, fmt.Errorf("attribute %d: %w", i, err)
		}
		for _, b := range p.Attributes[:i] { // a handful: no map per policy
			if b.Name == a.Name {
				return nil, fmt.Errorf("attribute %q listed twice", a.Name)
			}
		}
	}
	p.Attributes = append([]Attribute(nil), p.Attributes...)
	if len(p.Methods) == 0 {
		p.Methods = nil
	} else {
		p.Methods = append([]string(nil), p.Methods...)
	}
	rl := &rule{Policy: p, methods: methodSetOf(p.Methods)}
	for _, a := range p.Attributes {
		if k := http.CanonicalHeaderKey(a.Key); a.From == FromHeader && !rl.readsHeader(k) {
			rl.headers = append(rl.headers, k)
		}
	}
	return rl, nil
}

func (a Attribute) check() error {
	if !authsignal.ValidActionCode(a.Name) { // same alphabet suits attribute names
		return fmt.Errorf("attribute name %q must match ^[a-zA-Z0-9_-]{1,64}$", a.Name)
	}
	switch a.From {
	case FromForm, FromJSON, FromPath, FromQuery, FromHeader:
	default:
		return fmt.Errorf("attribute %q: unknown source %q (form, json, path, query or header)", a.Name, a.From)
	}
	if a.Key == "" {
		return fmt.Errorf("attribute %q: empty key", a.Name)
	}
	if a.From == FromJSON && slices.Contains(strings.Split(a.Key, "."), "") {
		return fmt.Errorf("attribute %q: JSON key %q has an empty segment", a.Name, a.Key)
	}
	switch a.Type {
	case "", TypeString, TypeNumber, TypeBool:
	default:
		return fmt.Errorf("attribute %q: unknown type %q (string, number or bool)", a.Name, a.Type)
	}
	return nil
}

// checkRoute accepts a router pattern path: one leading "/", no empty,
// "." or ".." segments, no query, fragment, whitespace or control
// characters. Wildcards (":id", "{id}", "{path...}", "*") are kept as text:
// matching is on the router's own pattern, never on a parse of ours.
func checkRoute(route string) error {
	if route == "" || route[0] != '/' {
		return fmt.Errorf("route %q must start with /", route)
	}
	for _, c := range route {
		if c <= ' ' || c == 0x7f || c == '?' || c == '#' || c == '\\' {
			return fmt.Errorf("route %q has a forbidden character %q", route, c)
		}
	}
	for rest := route[1:]; ; {
		s, more, found := strings.Cut(rest, "/")
		if s == "" && found {
			return fmt.Errorf("route %q has an empty segment", route)
		}
		if s == "." || s == ".." {
			return fmt.Errorf("route %q has a dot segment", route)
		}
		if !found {
			return nil
		}
		rest = more
	}
}

// CheckPolicies checks ps exactly as New checks Config.Policies and returns
// the error New would return, or nil: every policy valid (method, route,
// action code, remember, unenrolled, methods, attributes), no duplicate, no "*" policy
// overlapping a per-method one on its route. The error names the offending
// entry by its index, method and route. It is for code that builds a table
// outside Go source, such as package policyfile.
func CheckPolicies(ps []Policy) error {
	_, err := compileTable(ps)
	return err
}
