package stepuptest

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// parsingPolicies put attributes from every source on the suite's routes.
// "desk" and "kind" hold the letters that Unicode folds from other runes
// ("ſ" is "s", the Kelvin sign is "k").
func parsingPolicies(a Adapter) []stepup.Policy {
	return []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Attributes: []stepup.Attribute{
			{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
			{Name: "to", From: stepup.FromForm, Key: "to"},
			{Name: "desk", From: stepup.FromForm, Key: "desk"},
		}},
		{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer", Attributes: []stepup.Attribute{
			{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: "number"},
			{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
			{Name: "kind", From: stepup.FromJSON, Key: "kind"},
			{Name: "instant", From: stepup.FromJSON, Key: "instant", Type: "bool"},
		}},
		{Method: http.MethodDelete, Route: "/items/" + a.Param("id"), Action: "deleteItem", Attributes: []stepup.Attribute{
			{Name: "item", From: stepup.FromPath, Key: "id"},
			{Name: "reason", From: stepup.FromForm, Key: "reason"},
		}},
		{Method: http.MethodGet, Route: "/report", Action: "report", Attributes: []stepup.Attribute{
			{Name: "month", From: stepup.FromQuery, Key: "month"},
		}},
		{Method: http.MethodPut, Route: "/profile", Action: "profile", Attributes: []stepup.Attribute{
			{Name: "channel", From: stepup.FromHeader, Key: "X-Channel"},
		}},
	}
}

// runParsing proves the rule "the guard judges exactly what the handler
// executes": a request is either tracked with the one value every standard
// reader (net/http's FormValue, PostFormValue and URL.Query, encoding/json,
// echo's binder, the router's path parameters) gets, or refused with 400
// before anything is tracked or parked and before the handler runs.
func runParsing(t *testing.T, a Adapter) {
	const js = "application/json"
	type given struct {
		method, target, contentType, body string
		header                            http.Header
	}
	// send runs one request through a fresh environment with the parsing
	// policies, as alice.
	send := func(t *testing.T, g given) (*Env, *Response) {
		t.Helper()
		env := NewEnv(t, a, Options{Config: func(c *stepup.Config) { c.Policies = parsingPolicies(a) }})
		b := env.NewBrowser()
		b.Login("alice")
		return env, b.Do(g.method, g.target, g.contentType, g.body, g.header)
	}
	refused := []struct {
		name  string
		given given
	}{
		// The review's attack: the guard dropped a body with one bad pair
		// and judged the query's 1 while FormValue read the body's 5000.
		{"form body with a bare %", given{"POST", "/transfer?amount=1", Form, "_csrf=x&amount=5000&to=bob&%", nil}},
		{"form body with %zz", given{"POST", "/transfer?amount=1", Form, "amount=5000&to=bob&x=%zz", nil}},
		{"form body with a ; separator", given{"POST", "/transfer", Form, "amount=5000;to=bob", nil}},
		{"query with a bad pair", given{"POST", "/transfer?amount=1&%", Form, "to=bob", nil}},
		{"query with a ; separator", given{"POST", "/transfer?to=bob;amount=1", Form, "amount=5000", nil}},
		{"repeated form key", given{"POST", "/transfer", Form, "amount=1&amount=5000", nil}},
		{"query and body disagree", given{"POST", "/transfer?amount=1", Form, "amount=5000", nil}},
		{"keys differing in case", given{"POST", "/transfer", Form, "amount=1&AMOUNT=5000", nil}},
		{"form key folded from ſ", given{"POST", "/transfer", Form, "amount=5&desk=a&de%C5%BF%E2%84%AA=b", nil}},
		{"JSON body to a form policy, query says otherwise", given{"POST", "/transfer?amount=1", js, `{"amount":5000}`, nil}},
		{"JSON-looking text/plain body, query says otherwise", given{"POST", "/transfer?amount=1", "text/plain", `{"amount":5000}`, nil}},
		{"Content-Type in upper case (echo does not bind it, net/http does)", given{"POST", "/api/transfer", "Application/JSON", `{"amount":5}`, nil}},
		{"Content-Type sent twice", given{"POST", "/transfer", "", "amount=5", http.Header{"Content-Type": {Form, js}}}},
		{"malformed Content-Type", given{"POST", "/transfer", Form + "; charset", "amount=5", nil}},
		{"UTF-16 charset", given{"POST", "/api/transfer", js + "; charset=utf-16", `{"amount":5}`, nil}},
		{"XML body (echo's binder reads it)", given{"POST", "/api/transfer", "application/xml", `<t><amount>5000</amount></t>`, nil}},
		{"JSON key repeated", given{"POST", "/api/transfer", js, `{"amount":1,"amount":5000}`, nil}},
		{"JSON key repeated in another case", given{"POST", "/api/transfer", js, `{"amount":1,"Amount":5000}`, nil}},
		{"JSON key folded from the Kelvin sign", given{"POST", "/api/transfer", js, `{"amount":5,"payee":{"iban":"A"},"kind":"x","\u212aind":"y"}`, nil}},
		{"JSON key folded from ſ", given{"POST", "/api/transfer", js, `{"amount":5,"instant":true,"in\u017ftant":false}`, nil}},
		{"JSON nested key repeated in another case", given{"POST", "/api/transfer", js, `{"amount":5,"payee":{"iban":"A","IBAN":"C"}}`, nil}},
		{"JSON with trailing data (json.Decoder reads the first value)", given{"POST", "/api/transfer", js, `{"amount":1}{"amount":5000}`, nil}},
		{"JSON with trailing garbage", given{"POST", "/api/transfer", js, `{"amount":1} x`, nil}},
		{"JSON with a byte-order mark", given{"POST", "/api/transfer", js, "\ufeff{\"amount\":1}", nil}},
		{"JSON nested beyond the guard's depth", given{"POST", "/api/transfer", js, nested(64), nil}},
		{"JSON that does not parse", given{"POST", "/api/transfer", js, `{"amount": 5`, nil}},
		{"JSON object where a value is expected", given{"POST", "/api/transfer", js, `{"amount":{"value":5000}}`, nil}},
		{"JSON array where a value is expected", given{"POST", "/api/transfer", js, `{"amount":[5000]}`, nil}},
		{"JSON body and query disagree", given{"POST", "/api/transfer?amount=1", js, `{"amount":5000}`, nil}},
		{"number in hex", given{"POST", "/transfer", Form, "amount=0x1388", nil}},
		{"number with underscores", given{"POST", "/transfer", Form, "amount=5_000", nil}},
		{"number with spaces", given{"POST", "/transfer", Form, "amount=+5000+", nil}},
		{"number with a plus sign", given{"POST", "/transfer", Form, "amount=%2B5000", nil}},
		{"empty number", given{"POST", "/transfer", Form, "amount=", nil}},
		{"number with a dot and no fraction", given{"POST", "/transfer", Form, "amount=5.", nil}},
		{"number with an exponent and no digits", given{"POST", "/transfer", Form, "amount=5e%2B", nil}},
		{"number ending in e", given{"POST", "/transfer", Form, "amount=5e", nil}},
		{"minus alone", given{"POST", "/transfer", Form, "amount=-", nil}},
		{"JSON keys that fold alike, all non-ASCII", given{"POST", "/api/transfer", js, "{\"amount\":5,\"k\":1,\"\u212a\":2}", nil}},
		{"number with a leading zero", given{"POST", "/transfer", Form, "amount=05000", nil}},
		{"number that overflows", given{"POST", "/transfer", Form, "amount=1e400", nil}},
		{"NaN", given{"POST", "/transfer", Form, "amount=NaN", nil}},
		{"Inf", given{"POST", "/transfer", Form, "amount=-Inf", nil}},
		{"not a number", given{"POST", "/transfer", Form, "amount=12abc", nil}},
		{"JSON number too large", given{"POST", "/api/transfer", js, `{"amount":1e999}`, nil}},
		{"JSON string that is not a number", given{"POST", "/api/transfer", js, `{"amount":"lots"}`, nil}},
		{"not a bool", given{"POST", "/api/transfer", js, `{"amount":5,"instant":"yes"}`, nil}},
		{"form body on DELETE naming an attribute (net/http does not parse it)", given{"DELETE", "/items/1", Form, "reason=fraud", nil}},
		{"path and JSON body disagree (echo binds both)", given{"DELETE", "/items/1", js, `{"id":"2"}`, nil}},
		{"a nested JSON field and a flat query key disagree (echo binds nested structs from the query)", given{"POST", "/api/transfer?iban=B", js, `{"amount":5,"payee":{"iban":"A"}}`, nil}},
		{"path and query disagree", given{"DELETE", "/items/1?id=2", "", "", nil}},
		{"GET with a JSON body that echo binds", given{"GET", "/report?month=2026-01", js, `{"month":"1999-01"}`, nil}},
		{"header sent twice", given{"PUT", "/profile", js, `{}`, http.Header{"X-Channel": {"web", "mobile"}}}},
	}
	for _, tc := range refused {
		t.Run("refused: "+tc.name, func(t *testing.T) {
			env, resp := send(t, tc.given)
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Emulator.Tracked(), "nothing tracked")
			assert.Empty(t, env.Ledger.Runs(""), "no handler ran")
			refused := env.Events.LastRefusal()
			require.Error(t, refused, "the refusal is reported")
			assert.ErrorIs(t, refused, stepup.ErrBadRequest)
		})
	}

	agreed := []struct {
		name   string
		given  given
		expect map[string]any // what Authsignal's rules saw
	}{
		{"form", given{"POST", "/transfer", Form, "amount=250.5&to=bob", nil}, map[string]any{"amount": 250.5, "to": "bob"}},
		{"+ and %20 both decode to a space", given{"POST", "/transfer", Form, "amount=5&to=bob+m%20x", nil}, map[string]any{"amount": 5.0, "to": "bob m x"}},
		{"only in the query, as FormValue falls back to it", given{"POST", "/transfer?amount=5000", Form, "to=bob", nil}, map[string]any{"amount": 5000.0, "to": "bob"}},
		{"the same value twice", given{"POST", "/transfer?amount=5", Form, "amount=5&amount=5", nil}, map[string]any{"amount": 5.0}},
		{"a key in another case, as echo's binder and encoding/json match it", given{"POST", "/transfer", Form, "AMOUNT=5000", nil}, map[string]any{"amount": 5000.0}},
		{"a JSON body to a form policy is read too", given{"POST", "/transfer", js, `{"amount":5000}`, nil}, map[string]any{"amount": 5000.0}},
		{"a form body to a JSON policy is read too", given{"POST", "/api/transfer", Form, "amount=5000", nil}, map[string]any{"amount": 5000.0}},
		{"JSON", given{"POST", "/api/transfer", js, `{"amount":12.5,"payee":{"IBAN":"DE89"},"kind":"sepa","instant":true}`, nil},
			map[string]any{"amount": 12.5, "iban": "DE89", "kind": "sepa", "instant": true}},
		{"JSON nested to the guard's depth", given{"POST", "/api/transfer", js, nested(63), nil}, map[string]any{"amount": 5.0}},
		{"negative number", given{"POST", "/transfer", Form, "amount=-250.5", nil}, map[string]any{"amount": -250.5}},
		{"zero with a fraction", given{"POST", "/transfer", Form, "amount=0.25", nil}, map[string]any{"amount": 0.25}},
		{"signed exponents", given{"POST", "/transfer?to=x", Form, "amount=25E%2B2", nil}, map[string]any{"amount": 2500.0, "to": "x"}},
		{"negative exponent", given{"POST", "/transfer", Form, "amount=125e-2", nil}, map[string]any{"amount": 1.25}},
		{"JSON exponent", given{"POST", "/api/transfer", js, `{"amount":1e3}`, nil}, map[string]any{"amount": 1000.0}},
		{"JSON number as a string", given{"POST", "/api/transfer", js, `{"amount":"40"}`, nil}, map[string]any{"amount": 40.0}},
		{"JSON null is absent, as it leaves a decoded field alone", given{"POST", "/api/transfer", js, `{"amount":null,"kind":"x"}`, nil}, map[string]any{"kind": "x"}},
		{"charset=utf-8", given{"POST", "/api/transfer", js + "; charset=UTF-8", `{"amount":7}`, nil}, map[string]any{"amount": 7.0}},
		{"path", given{"DELETE", "/items/42", "", "", nil}, map[string]any{"item": "42"}},
		{"a form body on DELETE naming no attribute is not read", given{"DELETE", "/items/42", Form, "note=x", nil}, map[string]any{"item": "42"}},
		{"path and JSON body agree", given{"DELETE", "/items/42", js, `{"id":"42"}`, nil}, map[string]any{"item": "42"}},
		{"query", given{"GET", "/report?month=2026-11", "", "", nil}, map[string]any{"month": "2026-11"}},
		{"header", given{"PUT", "/profile", js, `{}`, http.Header{"X-Channel": {"web"}}}, map[string]any{"channel": "web"}},
	}
	for _, tc := range agreed {
		t.Run("agreed: "+tc.name, func(t *testing.T) {
			env, resp := send(t, tc.given)
			assert.NotEqual(t, http.StatusBadRequest, resp.StatusCode, resp.Body)
			tracked := env.Emulator.Tracked()
			require.Len(t, tracked, 1)
			assert.Equal(t, tc.expect, tracked[0].Custom)
		})
	}
}

// nested is a JSON body whose "x" holds n nested arrays: the innermost
// one sits n levels below the top object. The guard reads 63 levels, and
// refuses more rather than judge an attribute it did not read.
func nested(n int) string {
	return `{"amount":5,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
}
