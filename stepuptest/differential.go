package stepuptest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// The differential harness: a fuzz target sends arbitrary requests through
// a guard whose provider allows everything and records what the rules were
// shown, to a handler that reads the same keys with every standard reader;
// any disagreement is a step-up bypass.

// DiffAttributes has one attribute of each source and type. Their keys
// hold the letters Unicode folds from other runes ("s" from "ſ", "k" from
// the Kelvin sign).
var DiffAttributes = []stepup.Attribute{
	{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
	{Name: "to", From: stepup.FromForm, Key: "to"},
	{Name: "desk", From: stepup.FromQuery, Key: "desk"},
	{Name: "kind", From: stepup.FromJSON, Key: "kind"},
	{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
	{Name: "ok", From: stepup.FromJSON, Key: "ok", Type: "bool"},
	{Name: "id", From: stepup.FromPath, Key: "id"},
}

// RetryAttributes are DiffAttributes and a header attribute: what the
// retry mode (CheckRetry) judges, so that a retry can change what the
// binding of method, path, query and body does not cover (a header, the
// Content-Type of the same bytes).
var RetryAttributes = append(append([]stepup.Attribute(nil), DiffAttributes...),
	stepup.Attribute{Name: "fee", From: stepup.FromHeader, Key: RetryHeader})

// RetryHeader is the header RetryAttributes read.
const RetryHeader = "X-Fee"

// Observation is one standard reader's view of one attribute key.
type Observation struct {
	Reader string
	Key    string
	Value  any // string, float64 or bool
}

// Disagreements compares what the rules judged (tracked) with what each
// reader got. A reader that finds nothing is fine (it does not read that
// kind of body); a reader that finds a value the rules did not judge, or
// another value, is a bypass.
func Disagreements(attrs []stepup.Attribute, tracked map[string]any, seen []Observation) []string {
	var out []string
	for _, a := range attrs {
		tv, judged := tracked[a.Name]
		for _, o := range seen {
			if o.Key != a.Key {
				continue
			}
			if !judged {
				out = append(out, fmt.Sprintf("%s reads %s=%#v, the rules saw nothing", o.Reader, a.Key, o.Value))
				continue
			}
			if !sameValue(string(a.Type), tv, o.Value) {
				out = append(out, fmt.Sprintf("%s reads %s=%#v, the rules saw %#v", o.Reader, a.Key, o.Value, tv))
			}
		}
	}
	return out
}

func sameValue(typ string, judged, read any) bool {
	switch typ {
	case "number":
		want, _ := judged.(float64)
		switch v := read.(type) {
		case float64:
			return v == want
		case string:
			f, err := strconv.ParseFloat(v, 64)
			return err == nil && f == want
		}
		return false
	case "bool":
		want, _ := judged.(bool)
		switch v := read.(type) {
		case bool:
			return v == want
		case string:
			b, err := strconv.ParseBool(v)
			return err == nil && b == want
		}
		return false
	}
	want, _ := judged.(string)
	switch v := read.(type) {
	case string:
		return v == want
	case float64:
		f, err := strconv.ParseFloat(want, 64)
		return err == nil && f == v
	case bool:
		return strconv.FormatBool(v) == want
	}
	return false
}

// NetHTTPReaders reads every key of DiffAttributes the ways a net/http
// handler does: FormValue, PostFormValue, URL.Query, PathValue,
// encoding/json into a map and into a struct, and json.Decoder (which
// stops after the first value); RetryHeader with Header.Get; and what the
// guard hands the handler in stepup.VerificationFrom, every attribute of
// RetryAttributes. It leaves r.Body readable again.
func NetHTTPReaders(r *http.Request) []Observation {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var seen []Observation
	add := func(reader, key string, v any) { seen = append(seen, Observation{reader, key, v}) }
	if vs := r.Header.Values(RetryHeader); len(vs) > 0 {
		add("Header.Get", RetryHeader, vs[0])
	}
	if v, ok := stepup.VerificationFrom(r.Context()); ok {
		for _, a := range RetryAttributes {
			if x, ok := v.Attributes[a.Name]; ok {
				add("Verification.Attributes", a.Key, x)
			}
		}
	}
	_ = r.ParseForm()
	r.Body = io.NopCloser(bytes.NewReader(body))
	for _, a := range DiffAttributes {
		if vs, ok := r.Form[a.Key]; ok {
			add("FormValue", a.Key, vs[0])
		}
		if vs, ok := r.PostForm[a.Key]; ok {
			add("PostFormValue", a.Key, vs[0])
		}
		if vs, ok := r.URL.Query()[a.Key]; ok && len(vs) > 0 {
			add("URL.Query", a.Key, vs[0])
		}
		if v := r.PathValue(a.Key); v != "" {
			add("PathValue", a.Key, v)
		}
	}
	var m map[string]any
	if json.Unmarshal(body, &m) == nil {
		for _, a := range DiffAttributes {
			var cur any = m
			for _, part := range strings.Split(a.Key, ".") {
				mm, _ := cur.(map[string]any)
				cur = mm[part]
			}
			if cur != nil {
				add("json map", a.Key, cur)
			}
		}
	}
	var st DiffJSON
	if json.Unmarshal(body, &st) == nil {
		st.Observe("json.Unmarshal struct", add)
	}
	var st2 DiffJSON
	if json.NewDecoder(bytes.NewReader(body)).Decode(&st2) == nil {
		st2.Observe("json.Decoder struct", add)
	}
	return seen
}

// DiffJSON is a handler's request struct for the keys of DiffAttributes,
// as encoding/json (and echo's binder for JSON bodies) fills it.
type DiffJSON struct {
	Amount any `json:"amount"`
	To     any `json:"to"`
	Desk   any `json:"desk"`
	Kind   any `json:"kind"`
	OK     any `json:"ok"`
	ID     any `json:"id"`
	Payee  struct {
		IBAN any `json:"iban"`
	} `json:"payee"`
}

// Observe reports the fields that were set.
func (f *DiffJSON) Observe(reader string, add func(reader, key string, v any)) {
	for key, v := range map[string]any{"amount": f.Amount, "to": f.To, "desk": f.Desk, "kind": f.Kind,
		"ok": f.OK, "id": f.ID, "payee.iban": f.Payee.IBAN} {
		switch v.(type) {
		case string, float64, bool:
			add(reader, key, v)
		case nil:
		default:
			add(reader, key, fmt.Sprintf("%T", v)) // an object or array: never what the rules judged
		}
	}
}

// AllowProvider is a provider that answers ALLOW, for an enrolled user, to
// every track and records the custom attributes it was shown; in the retry
// mode (CheckRetry) it answers CHALLENGE_REQUIRED instead, and validates
// only the token CheckRetry made for that challenge.
type AllowProvider struct {
	mu        sync.Mutex
	custom    []map[string]any
	keys      []string          // the idempotency key of every track
	challenge bool              // answer CHALLENGE_REQUIRED
	tokens    map[string]string // completed challenges: token -> idempotency key
}

// Track implements stepup.Provider.
func (p *AllowProvider) Track(_ context.Context, _, _ string, req authsignal.TrackRequest) (*authsignal.TrackResponse, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.custom = append(p.custom, req.Custom)
	p.keys = append(p.keys, req.IdempotencyKey)
	if p.challenge {
		return &authsignal.TrackResponse{State: authsignal.StateChallengeRequired, IdempotencyKey: req.IdempotencyKey,
			URL: "https://challenge.authsignal.com/?c=" + req.IdempotencyKey}, nil
	}
	return &authsignal.TrackResponse{State: authsignal.StateAllow, IdempotencyKey: req.IdempotencyKey, IsEnrolled: true}, nil
}

// Validate implements stepup.Provider: only a token complete made is
// valid, for whichever user and action it is asked about.
func (p *AllowProvider) Validate(_ context.Context, req authsignal.ValidateRequest) (*authsignal.ValidateResponse, error) {
	p.mu.Lock()
	key, ok := p.tokens[req.Token]
	p.mu.Unlock()
	if !ok {
		return &authsignal.ValidateResponse{State: authsignal.StateChallengeFailed}, nil
	}
	return &authsignal.ValidateResponse{IsValid: true, State: authsignal.StateChallengeSucceeded,
		UserID: req.UserID, Action: req.Action, IdempotencyKey: key}, nil
}

// complete completes the challenge of the last track, as its user would,
// and returns the token that proves it.
func (p *AllowProvider) complete() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tokens == nil {
		p.tokens = map[string]string{}
	}
	token := fmt.Sprintf("completed.%d", len(p.tokens))
	p.tokens[token] = p.keys[len(p.keys)-1]
	return token
}

func (p *AllowProvider) setChallenge(on bool) {
	p.mu.Lock()
	p.challenge = on
	p.mu.Unlock()
}

// Tracked returns the custom attributes of every track so far.
func (p *AllowProvider) Tracked() []map[string]any {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]map[string]any(nil), p.custom...)
}

// Differential runs one request at a time through an application whose
// protected handler reports what its readers got with Record.
type Differential struct {
	Provider *AllowProvider
	Handler  http.Handler // the application, set by the caller
	clock    *Clock       // the guard's and its store's (Guard), moved on after each retry
	mu       sync.Mutex
	ran      bool
	seen     []Observation
}

// NewDifferential returns a harness with a fresh AllowProvider.
func NewDifferential() *Differential {
	return &Differential{Provider: &AllowProvider{}, clock: NewClock()}
}

// Guard returns a guard whose provider is d's AllowProvider, for user
// "alice", with policies (none when the target protects its route with
// Require): what every differential target needs, so that its own code is
// only the router and its readers.
func (d *Differential) Guard(tb testing.TB, policies ...stepup.Policy) *stepup.Guard {
	tb.Helper()
	g, err := stepup.New(stepup.Config{
		Provider:    d.Provider,
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    policies,
		Now:         d.clock.Now,
		Store:       stepup.NewMemoryStore(stepup.MemoryClock(d.clock.Now)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	return g
}

// Record is called by the protected handler with its readers' views.
func (d *Differential) Record(seen []Observation) {
	d.mu.Lock()
	d.ran, d.seen = true, seen
	d.mu.Unlock()
}

// DiffMethods are the methods a fuzz input picks from.
var DiffMethods = []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}

// Check sends method (an index into DiffMethods) to target with the given
// Content-Type, raw query and body, and fails when the handler ran on a
// value the rules did not judge, or when a refusal came after a track.
func (d *Differential) Check(t testing.TB, method uint8, target, contentType, query, body string) {
	t.Helper()
	req := httptest.NewRequest(DiffMethods[int(method)%len(DiffMethods)], target, strings.NewReader(body))
	req.URL.RawQuery = query
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	d.mu.Lock()
	d.ran, d.seen = false, nil
	d.mu.Unlock()
	before := len(d.Provider.Tracked())
	rec := httptest.NewRecorder()
	d.Handler.ServeHTTP(rec, req)
	d.mu.Lock()
	ran, seen := d.ran, d.seen
	d.mu.Unlock()
	tracked := d.Provider.Tracked()
	if !ran {
		switch rec.Code {
		case http.StatusBadRequest, http.StatusUnsupportedMediaType, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("%s %q ?%s %q: the handler did not run and the answer is %d, not a refusal", req.Method, contentType, query, body, rec.Code)
		}
		if len(tracked) != before {
			t.Fatalf("%s %q ?%s %q: refused with %d after tracking", req.Method, contentType, query, body, rec.Code)
		}
		return
	}
	if len(tracked) != before+1 {
		t.Fatalf("the handler ran after %d tracks", len(tracked)-before)
	}
	if dis := Disagreements(DiffAttributes, tracked[len(tracked)-1], seen); len(dis) > 0 {
		t.Fatalf("%s %q ?%s %q: the rules judged one request, the handler read another:\n%s",
			req.Method, contentType, query, body, strings.Join(dis, "\n"))
	}
}

// CheckRetry is the retry mode: it sends request A (method, an index into
// DiffMethods, with contentA, query, body and, when not empty, RetryHeader
// set to feeA) to target, which the provider challenges; completes the
// challenge; and resends it as B, with the token, the same method, target,
// query and body, but contentB and feeB. It fails when B's handler ran on
// anything but what was judged for A (the readers and the handler's
// Verification), when B was tracked, and when B, identical to A, did not
// run. Target's guard must judge RetryAttributes and be made by Guard.
func (d *Differential) CheckRetry(t testing.TB, method uint8, target, contentA, contentB, query, body, feeA, feeB string) {
	t.Helper()
	defer d.clock.Advance(time.Hour) // every challenge, park and cap of this check expires
	send := func(contentType, fee, token string) (*httptest.ResponseRecorder, bool, []Observation) {
		req := httptest.NewRequest(DiffMethods[int(method)%len(DiffMethods)], target, strings.NewReader(body))
		req.URL.RawQuery = query
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if fee != "" {
			req.Header.Set(RetryHeader, fee)
		}
		if token != "" {
			req.Header.Set(stepup.TokenHeader, token)
		}
		d.mu.Lock()
		d.ran, d.seen = false, nil
		d.mu.Unlock()
		rec := httptest.NewRecorder()
		d.Handler.ServeHTTP(rec, req)
		d.mu.Lock()
		defer d.mu.Unlock()
		return rec, d.ran, d.seen
	}
	what := fmt.Sprintf("%s ?%s %q judged as %q %s=%q, retried as %q %s=%q",
		DiffMethods[int(method)%len(DiffMethods)], query, body, contentA, RetryHeader, feeA, contentB, RetryHeader, feeB)

	d.Provider.setChallenge(true)
	before := len(d.Provider.Tracked())
	a, ran, _ := send(contentA, feeA, "")
	d.Provider.setChallenge(false)
	tracked := d.Provider.Tracked()
	if ran {
		t.Fatalf("%s: the handler ran on a challenged request", what)
	}
	if a.Code != http.StatusUnauthorized || len(tracked) != before+1 {
		// Refused (Check holds the refusals to their rules): nothing was
		// challenged, nothing to retry.
		return
	}
	judged := tracked[len(tracked)-1]
	token := d.Provider.complete()

	b, ran, seen := send(contentB, feeB, token)
	if len(d.Provider.Tracked()) != len(tracked) {
		t.Fatalf("%s: the retry was tracked", what)
	}
	if !ran {
		if contentA == contentB && feeA == feeB {
			t.Fatalf("%s: the judged request itself, retried with its token, did not run (%d %s)", what, b.Code, b.Body)
		}
		switch b.Code {
		case http.StatusForbidden, http.StatusBadRequest, http.StatusUnsupportedMediaType:
		default:
			t.Fatalf("%s: the retry did not run and the answer is %d, not a refusal", what, b.Code)
		}
		return
	}
	if dis := Disagreements(RetryAttributes, judged, seen); len(dis) > 0 {
		t.Fatalf("%s: the rules judged one request, the retry ran another:\n%s", what, strings.Join(dis, "\n"))
	}
}

// RetrySeed is one seed of the retry mode: a method index, the judged and
// the retried Content-Type, query, body, the judged and the retried
// RetryHeader.
type RetrySeed struct {
	Method                uint8
	CTA, CTB, Query, Body string
	FeeA, FeeB            string
}

// RetrySeeds are the attacks the second review found, and their
// neighbours: a header attribute changed or respelled, the same bytes
// under another Content-Type, and the judged request itself.
var RetrySeeds = []RetrySeed{
	{0, "application/json", "application/json", "", `{"to":"bob"}`, "5000", "1000000"},
	{0, "application/json", "application/json", "", `{"to":"bob"}`, "5000", "5e3"},
	{0, "application/json", "application/json", "", `{"to":"bob"}`, "5000", ""},
	{0, "application/json", "application/json", "", `{"to":"bob"}`, "", "5000"},
	{0, "text/plain", Form, "", "amount=1000000", "", ""},
	{0, "", Form, "", "amount=1000000", "", ""},
	{0, "text/plain", "application/json", "", `{"amount":1000000}`, "", ""},
	{0, Form, Form + "; charset=utf-8", "", "amount=5", "", ""},
	{0, Form, Form, "desk=a", "amount=5&to=bob", "7", "7"},
	{1, "", "", "desk=a", "", "7", "7"},
	{3, "application/json", "text/plain", "", `{"kind":"a"}`, "", ""},
	{4, Form, "", "", "to=bob", "", ""},
}

// DiffSeed is one fuzz seed: a method index, Content-Type, query and body.
type DiffSeed struct {
	Method          uint8
	CT, Query, Body string
}

// DiffSeeds are the splits the review found, and their neighbours.
var DiffSeeds = []DiffSeed{
	{0, Form, "amount=1", "_csrf=x&amount=5000&to=bob&%"},
	{0, Form, "amount=1", "amount=5000&x=%zz"},
	{0, Form, "", "amount=5000;to=bob"},
	{0, Form, "amount=1", "amount=5000"},
	{0, Form, "", "amount=1&amount=5000"},
	{0, Form, "", "amount=1&AMOUNT=5000"},
	{0, Form, "", "to=a+b&to=a%20b"},
	{0, "application/json", "amount=1", `{"amount":5000}`},
	{0, "text/plain", "amount=1", `{"amount":5000}`},
	{0, "Application/JSON", "", `{"kind":"a"}`},
	{0, "application/json; charset=utf-16", "", `{"kind":"a"}`},
	{0, "application/json", "", `{"kind":"a","KIND":"b"}`},
	{0, "application/json", "", "{\"kind\":\"a\",\"\u212aind\":\"b\"}"},
	{0, "application/json", "", "{\"desk\":\"a\",\"de\u017fk\":\"b\"}"},
	{0, "application/json", "", `{"kind":"a"}{"kind":"b"}`},
	{0, "application/json", "", "\ufeff{\"kind\":\"a\"}"},
	{0, "application/json", "", `{"x":` + strings.Repeat("[", 80) + strings.Repeat("]", 80) + `,"kind":"a"}`},
	{0, "application/json", "", `{"amount":1e3,"ok":true,"payee":{"IBAN":"x"}}`},
	{0, "application/json", "", `{"amount":"0x10"}`},
	{0, "application/json", "", `{"amount":-0,"ok":"1"}`},
	{0, Form, "", "amount=1_000"},
	{0, Form, "", "amount=1e999"},
	{0, Form, "", "AMOUNT=5&to=x"},
	{0, "application/xml", "", `<x><kind>a</kind></x>`},
	{4, Form, "", "to=bob"},
	{4, "application/json", "", `{"id":"8"}`},
	{4, "application/json", "", `{"id":"7"}`},
	{1, "application/json", "desk=a", `{"desk":"b"}`},
	{1, "", "id=8", ""},
	{3, Form + "; charset=utf-8", "", "to=%C3%A9"},
}
