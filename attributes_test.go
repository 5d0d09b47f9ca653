package stepup_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
)

// diffAttributes has one attribute of each source and type; every one of
// them is looked up by every standard reader in the differential harness.
var diffAttributes = []stepup.Attribute{
	{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
	{Name: "to", From: stepup.FromForm, Key: "to"},
	{Name: "desk", From: stepup.FromQuery, Key: "desk"},
	{Name: "kind", From: stepup.FromJSON, Key: "kind"},
	{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
	{Name: "ok", From: stepup.FromJSON, Key: "ok", Type: "bool"},
	{Name: "id", From: stepup.FromPath, Key: "id"},
}

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
			if !sameValue(a.Type, tv, o.Value) {
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

// netHTTPReaders reads every attribute key the ways a net/http handler
// does: FormValue, PostFormValue, URL.Query, PathValue, encoding/json into
// a map and into a struct, and json.Decoder (which stops after one value).
func netHTTPReaders(r *http.Request) []Observation {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	var seen []Observation
	add := func(reader, key string, v any) { seen = append(seen, Observation{reader, key, v}) }
	_ = r.ParseForm()
	for _, a := range diffAttributes {
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
		for _, a := range diffAttributes {
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
	var st jsonFields
	if json.Unmarshal(body, &st) == nil {
		st.observe("json.Unmarshal struct", add)
	}
	var st2 jsonFields
	if json.NewDecoder(bytes.NewReader(body)).Decode(&st2) == nil {
		st2.observe("json.Decoder struct", add)
	}
	return seen
}

// jsonFields is a handler's request struct for the harness's keys.
type jsonFields struct {
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

func (f *jsonFields) observe(reader string, add func(reader, key string, v any)) {
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

// diffHarness is a guard that allows everything and records what it
// tracked, in front of a handler that records what the readers got.
type diffHarness struct {
	provider *fakeProvider
	handler  http.Handler
	mu       sync.Mutex
	ran      bool
	seen     []Observation
}

func newDiffHarness(t testing.TB) *diffHarness {
	h := &diffHarness{provider: &fakeProvider{state: authsignal.StateAllow, record: true}}
	cfg := validConfig()
	cfg.Provider = h.provider
	g, err := stepup.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/{id}", g.Require("transfer", stepup.WithAttributes(diffAttributes...))(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			seen := netHTTPReaders(r)
			h.mu.Lock()
			h.ran, h.seen = true, seen
			h.mu.Unlock()
		})))
	h.handler = mux
	return h
}

var diffMethods = []string{http.MethodPost, http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete}

// check sends one request and fails on any disagreement between what the
// rules judged and what a reader got, when the handler ran.
func (h *diffHarness) check(t *testing.T, method uint8, contentType, query, body string) {
	req := httptest.NewRequest(diffMethods[int(method)%len(diffMethods)], "/7", strings.NewReader(body))
	req.URL.RawQuery = query
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	h.mu.Lock()
	h.ran, h.seen = false, nil
	h.mu.Unlock()
	before := len(h.provider.tracked())
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, req)
	h.mu.Lock()
	ran, seen := h.ran, h.seen
	h.mu.Unlock()
	tracked := h.provider.tracked()
	if !ran {
		if rec.Code != http.StatusBadRequest && rec.Code != http.StatusUnsupportedMediaType && rec.Code != http.StatusRequestEntityTooLarge {
			t.Fatalf("handler did not run and the answer is %d, not a refusal", rec.Code)
		}
		if len(tracked) != before {
			t.Fatalf("refused with %d after tracking", rec.Code)
		}
		return
	}
	if len(tracked) != before+1 {
		t.Fatalf("handler ran with %d tracks", len(tracked)-before)
	}
	if d := Disagreements(diffAttributes, tracked[len(tracked)-1].Custom, seen); len(d) > 0 {
		t.Fatalf("%s %q ?%s %q: the rules judged one request, the handler read another:\n%s",
			req.Method, contentType, query, body, strings.Join(d, "\n"))
	}
}

// diffSeeds are the splits the review found, and their neighbours.
var diffSeeds = []struct {
	method          uint8
	ct, query, body string
}{
	{0, "application/x-www-form-urlencoded", "amount=1", "_csrf=x&amount=5000&to=bob&%"},
	{0, "application/x-www-form-urlencoded", "amount=1", "amount=5000&x=%zz"},
	{0, "application/x-www-form-urlencoded", "", "amount=5000;to=bob"},
	{0, "application/x-www-form-urlencoded", "amount=1", "amount=5000"},
	{0, "application/x-www-form-urlencoded", "", "amount=1&amount=5000"},
	{0, "application/x-www-form-urlencoded", "", "amount=1&AMOUNT=5000"},
	{0, "application/x-www-form-urlencoded", "", "to=a+b&to=a%20b"},
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
	{0, "application/x-www-form-urlencoded", "", "amount=1_000"},
	{0, "application/x-www-form-urlencoded", "", "amount=-0"},
	{0, "application/x-www-form-urlencoded", "", "amount=1e999"},
	{0, "application/xml", "", `<x><kind>a</kind></x>`},
	{4, "application/x-www-form-urlencoded", "", "to=bob"},
	{4, "application/json", "", `{"id":"8"}`},
	{1, "application/json", "desk=a", `{"desk":"b"}`},
	{1, "", "id=8", ""},
	{3, "application/x-www-form-urlencoded; charset=utf-8", "", "to=%C3%A9"},
}

// FuzzAttributesAgreeWithNetHTTP: whatever the method, Content-Type, query
// and body, either the guard refuses before tracking, or every net/http and
// encoding/json reader of the request gets the value the rules judged (or
// nothing). Its seeds, the splits the review found, run with every
// `go test`; CI fuzzes it for a bounded time on top of them.
func FuzzAttributesAgreeWithNetHTTP(f *testing.F) {
	for _, s := range diffSeeds {
		f.Add(s.method, s.ct, s.query, s.body)
	}
	h := newDiffHarness(f)
	f.Fuzz(func(t *testing.T, method uint8, contentType, query, body string) {
		h.check(t, method, contentType, query, body)
	})
}
