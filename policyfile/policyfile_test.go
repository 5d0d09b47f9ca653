package policyfile_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/sessions"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/internal/yamlx"
	"github.com/stepupkit/stepup/policyfile"
)

// validConfig is the smallest Config stepup.New accepts, to check that
// what Parse accepts, New accepts too.
func validConfig() stepup.Config {
	return stepup.Config{
		Provider:    authsignal.NewClient("secret"),
		Sessions:    sessions.NewCookieStore([]byte("0123456789abcdef0123456789abcdef")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
	}
}

const policyYAML = `
policies:
  - method: POST
    route: /transfer
    action: transfer
    review: 24h
    attributes:
      - {name: amount, from: form, key: amount, type: number}
      - {name: to, from: form, key: to}
  - method: "*"
    route: /admin/
    action: adminAccess
    remember: 5m
    unenrolled: allow
  - method: PUT
    route: /profile
    action: profile
    failOpen: true
    unenrolled: enroll
  - method: POST
    route: /api/pay/{acct}
    action: pay
    remember: 1h30m
    attributes:
      - name: iban
        from: json
        key: payee.iban
      - {name: acct, from: path, key: acct}
      - {name: ref, from: query, key: ref, type: string}
      - {name: urgent, from: header, key: X-Urgent, type: bool}
`

const policyJSON = `{
  "policies": [
    {"method": "POST", "route": "/transfer", "action": "transfer", "review": "24h",
     "attributes": [{"name": "amount", "from": "form", "key": "amount", "type": "number"},
                    {"name": "to", "from": "form", "key": "to"}]},
    {"method": "*", "route": "/admin/", "action": "adminAccess", "remember": "5m", "unenrolled": "allow"},
    {"method": "PUT", "route": "/profile", "action": "profile", "failOpen": true, "unenrolled": "enroll"},
    {"method": "POST", "route": "/api/pay/{acct}", "action": "pay", "remember": "1h30m",
     "attributes": [{"name": "iban", "from": "json", "key": "payee.iban"},
                    {"name": "acct", "from": "path", "key": "acct"},
                    {"name": "ref", "from": "query", "key": "ref", "type": "string"},
                    {"name": "urgent", "from": "header", "key": "X-Urgent", "type": "bool"}]}
  ]
}`

// policyFileTable is what policyYAML and policyJSON describe.
var policyFileTable = []stepup.Policy{
	{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Review: 24 * time.Hour, Attributes: []stepup.Attribute{
		{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number"},
		{Name: "to", From: stepup.FromForm, Key: "to"},
	}},
	{Method: "*", Route: "/admin/", Action: "adminAccess", Remember: 5 * time.Minute, Unenrolled: stepup.UnenrolledAllow},
	{Method: http.MethodPut, Route: "/profile", Action: "profile", FailOpen: true, Unenrolled: stepup.UnenrolledEnroll},
	{Method: http.MethodPost, Route: "/api/pay/{acct}", Action: "pay", Remember: 90 * time.Minute, Attributes: []stepup.Attribute{
		{Name: "iban", From: stepup.FromJSON, Key: "payee.iban"},
		{Name: "acct", From: stepup.FromPath, Key: "acct"},
		{Name: "ref", From: stepup.FromQuery, Key: "ref", Type: "string"},
		{Name: "urgent", From: stepup.FromHeader, Key: "X-Urgent", Type: "bool"},
	}},
}

func TestParse(t *testing.T) {
	for name, doc := range map[string]string{"YAML": policyYAML, "JSON": policyJSON} {
		t.Run(name, func(t *testing.T) {
			ps, err := policyfile.Parse([]byte(doc))
			require.NoError(t, err)
			assert.Equal(t, policyFileTable, ps)

			cfg := validConfig()
			cfg.Policies = ps
			g, err := stepup.New(cfg)
			require.NoError(t, err, "what parses is accepted by New")
			rule, ok := g.Match(http.MethodDelete, "/admin/")
			require.True(t, ok)
			assert.Equal(t, 5*time.Minute, rule.Policy().Remember)
			assert.Equal(t, stepup.UnenrolledAllow, rule.Policy().Unenrolled)
			rule, ok = g.Match(http.MethodPost, "/transfer")
			require.True(t, ok)
			assert.Equal(t, stepup.UnenrolledDeny, rule.Policy().Unenrolled, "deny unless the file says otherwise")
		})
	}
}

// methods and display, in YAML's flow and block forms and in JSON.
func TestParseMethodsAndDisplay(t *testing.T) {
	want := []stepup.Policy{
		{Method: http.MethodPost, Route: "/transfer", Action: "transfer", Methods: []string{"PASSKEY", "SECURITY_KEY"},
			Attributes: []stepup.Attribute{
				{Name: "amount", From: stepup.FromForm, Key: "amount", Type: "number", Display: true},
				{Name: "to", From: stepup.FromForm, Key: "to", Display: true},
				{Name: "ref", From: stepup.FromForm, Key: "ref"},
			}},
		{Method: http.MethodPost, Route: "/settings/email", Action: "changeEmail", Methods: []string{"PASSKEY"},
			Unenrolled: stepup.UnenrolledEnroll},
	}
	docs := map[string]string{
		"YAML flow": `policies:
  - method: POST
    route: /transfer
    action: transfer
    methods: [PASSKEY, SECURITY_KEY]
    attributes:
      - {name: amount, from: form, key: amount, type: number, display: true}
      - {name: to, from: form, key: to, display: true}
      - {name: ref, from: form, key: ref, display: false}
  - {method: POST, route: /settings/email, action: changeEmail, methods: [PASSKEY], unenrolled: enroll}
`,
		"YAML block": `policies:
  - method: POST
    route: /transfer
    action: transfer
    methods:
      - PASSKEY
      - SECURITY_KEY
    attributes:
      - name: amount
        from: form
        key: amount
        type: number
        display: true
      - {name: to, from: form, key: to, display: true}
      - {name: ref, from: form, key: ref}
  - method: POST
    route: /settings/email
    action: changeEmail
    methods:
      - PASSKEY
    unenrolled: enroll
`,
		"JSON": `{"policies": [
  {"method": "POST", "route": "/transfer", "action": "transfer", "methods": ["PASSKEY", "SECURITY_KEY"],
   "attributes": [{"name": "amount", "from": "form", "key": "amount", "type": "number", "display": true},
                  {"name": "to", "from": "form", "key": "to", "display": true},
                  {"name": "ref", "from": "form", "key": "ref", "display": false}]},
  {"method": "POST", "route": "/settings/email", "action": "changeEmail", "methods": ["PASSKEY"], "unenrolled": "enroll"}
]}`,
	}
	for name, doc := range docs {
		t.Run(name, func(t *testing.T) {
			ps, err := policyfile.Parse([]byte(doc))
			require.NoError(t, err)
			assert.Equal(t, want, ps)
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	for name, doc := range map[string]string{"policies.yaml": policyYAML, "policies.json": policyJSON} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			require.NoError(t, os.WriteFile(path, []byte(doc), 0o600))
			ps, err := policyfile.Load(path)
			require.NoError(t, err)
			assert.Equal(t, policyFileTable, ps)
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, err := policyfile.Load(filepath.Join(dir, "nope.yaml"))
		require.Error(t, err)
		assert.True(t, errors.Is(err, os.ErrNotExist), err.Error())
		assert.Contains(t, err.Error(), "nope.yaml")
		assert.True(t, strings.HasPrefix(err.Error(), "stepup: "))
	})
	t.Run("invalid file names the entry", func(t *testing.T) {
		path := filepath.Join(dir, "bad.yaml")
		require.NoError(t, os.WriteFile(path, []byte("policies:\n  - {method: GET, route: /a, action: a}\n  - {method: GET, route: /b, action: 'b c'}\n"), 0o600))
		_, err := policyfile.Load(path)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "policy 1 (GET /b)")
	})
}

func TestParseRejects(t *testing.T) {
	entry := func(extra string) string {
		return "policies:\n  - {method: GET, route: /ok, action: ok}\n  - {method: POST, route: /transfer, action: transfer" + extra + "}\n"
	}
	tests := []struct {
		name   string
		given  string
		expect []string
	}{
		{"empty document", "", []string{"no policies"}},
		{"empty table", "policies: []", []string{"no policies"}},
		{"null table", "policies: null", []string{"no policies"}},
		{"not a table", "policies: transfer", []string{"stepup: policy file"}},
		{"YAML syntax error", "policies:\n  - method: [POST\n", []string{"stepup: policy file"}},
		{"JSON syntax error", `{"policies": [{"method": "POST"`, []string{"stepup: policy file"}},
		{"unknown top-level field", "policies:\n  - {method: GET, route: /ok, action: ok}\nversion: 2\n", []string{"stepup: policy file", "version"}},
		{"unknown policy field", entry(", acton: x"), []string{"stepup: policy file", "acton"}},
		{"misspelt remember", entry(", rememberFor: 5m"), []string{"stepup: policy file", "rememberFor"}},
		{"Go field name instead of the file's", entry(", Remember: 5m"), []string{"stepup: policy file", "Remember"}},
		{"unknown attribute field", entry(", attributes: [{name: a, from: form, key: a, kind: number}]"), []string{"stepup: policy file", "kind"}},
		{"unknown JSON field", `{"policies": [{"method": "POST", "route": "/x", "action": "x", "custom": "f"}]}`, []string{"stepup: policy file", "custom"}},
		{"remember not a duration", entry(", remember: 5 minutes"), []string{"policy 1 (POST /transfer)", "remember"}},
		{"remember without a unit", entry(", remember: '300'"), []string{"policy 1 (POST /transfer)", "remember"}},
		{"negative remember", entry(", remember: -5m"), []string{"policy 1 (POST /transfer)", "negative remember"}},
		{"review not a duration", entry(", review: a day"), []string{"policy 1 (POST /transfer)", "review"}},
		{"negative review", entry(", review: -24h"), []string{"policy 1 (POST /transfer)", "negative review"}},
		{"failOpen not a bool", entry(", failOpen: [1]"), []string{"stepup: policy file"}},
		{"unknown unenrolled choice", entry(", unenrolled: skip"), []string{"policy 1 (POST /transfer)", `unenrolled "skip"`}},
		{"unenrolled in another case", entry(", unenrolled: Deny"), []string{"policy 1 (POST /transfer)", `unenrolled "Deny"`}},
		{"unenrolled not a string", entry(", unenrolled: [deny]"), []string{"stepup: policy file"}},
		{"unknown method name", entry(", methods: [PASSKEY, FIDO]"), []string{"policy 1 (POST /transfer)", `unknown verification method "FIDO"`}},
		{"method in lower case", entry(", methods: [passkey]"), []string{"policy 1 (POST /transfer)", `"passkey"`}},
		{"method twice", entry(", methods: [SMS, SMS]"), []string{"policy 1 (POST /transfer)", `"SMS" listed twice`}},
		{"methods not a list", entry(", methods: PASSKEY"), []string{"stepup: policy file"}},
		{"methods as a JSON string", `{"policies": [{"method": "POST", "route": "/x", "action": "x", "methods": "PASSKEY"}]}`, []string{"stepup: policy file"}},
		{"a JSON method not a string", `{"policies": [{"method": "POST", "route": "/x", "action": "x", "methods": [1]}]}`, []string{"stepup: policy file"}},
		{"misspelt methods", entry(", method_list: [SMS]"), []string{"stepup: policy file", "method_list"}},
		{"display not a bool", entry(", attributes: [{name: a, from: form, key: a, display: yes please}]"), []string{"stepup: policy file"}},
		{"display as a JSON string", `{"policies": [{"method": "POST", "route": "/x", "action": "x", "attributes": [{"name": "a", "from": "form", "key": "a", "display": "true"}]}]}`, []string{"stepup: policy file"}},
		{"unenrolled as a JSON bool", `{"policies": [{"method": "POST", "route": "/x", "action": "x", "unenrolled": false}]}`, []string{"stepup: policy file"}},
		{"misspelt unenrolled", entry(", unenroled: allow"), []string{"stepup: policy file", "unenroled"}},
		{"unknown method", "policies:\n  - {method: GET, route: /ok, action: ok}\n  - {method: post, route: /x, action: x}\n", []string{"policy 1 (post /x)", "unknown method"}},
		{"bad route", "policies:\n  - {method: GET, route: /ok, action: ok}\n  - {method: POST, route: /a/../b, action: x}\n", []string{"policy 1 (POST /a/../b)", "dot segment"}},
		{"bad action", "policies:\n  - {method: GET, route: /ok, action: ok}\n  - {method: POST, route: /x, action: 'not ok'}\n", []string{"policy 1 (POST /x)", `"not ok"`}},
		{"action of 65 characters", "policies:\n  - {method: POST, route: /x, action: " + strings.Repeat("a", 65) + "}\n", []string{"policy 0 (POST /x)", "action code"}},
		{"bad attribute source", entry(", attributes: [{name: a, from: cookie, key: a}]"), []string{"policy 1 (POST /transfer)", `unknown source "cookie"`}},
		{"bad attribute type", entry(", attributes: [{name: a, from: form, key: a, type: float}]"), []string{"policy 1 (POST /transfer)", `unknown type "float"`}},
		{"attribute without key", entry(", attributes: [{name: a, from: form}]"), []string{"policy 1 (POST /transfer)", "empty key"}},
		{"duplicate attribute", entry(", attributes: [{name: a, from: form, key: a}, {name: a, from: query, key: a}]"), []string{"policy 1 (POST /transfer)", "twice"}},
		{"duplicate policy", "policies:\n  - {method: POST, route: /x, action: x}\n  - {method: POST, route: /x, action: y}\n", []string{"policy 1 (POST /x)", "duplicate"}},
		{"* and POST on one route", "policies:\n  - {method: POST, route: /x, action: x}\n  - {method: '*', route: /x, action: y}\n", []string{"POST /x", "* /x", "overlap"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps, err := policyfile.Parse([]byte(tc.given))
			require.Error(t, err)
			assert.Nil(t, ps)
			assert.True(t, strings.HasPrefix(err.Error(), "stepup: "), err.Error())
			for _, want := range tc.expect {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

// FuzzParse: a policy file never panics the parser, and whatever
// it accepts, New accepts too and protects exactly as written.
func FuzzParse(f *testing.F) {
	f.Add([]byte(policyYAML))
	f.Add([]byte(policyJSON))
	f.Add([]byte("policies:\n  - {method: GET, route: /a, action: a, remember: 1ns}\n"))
	f.Add([]byte("policies:\n  - {method: '*', route: /, action: a}\n  - {method: GET, route: /{$}, action: b}\n"))
	f.Add([]byte("policies:\n  - &p {method: GET, route: /a, action: a}\n  - *p\n"))
	f.Add([]byte("policies:\n  - method: POST\n    route: /x/../y\n    action: x\n"))
	f.Add([]byte(`{"policies": [{"method": "PUT", "route": "/u/{id}", "action": "u", "attributes": [{"name": "n", "from": "path", "key": "id", "type": "number"}]}]}`))
	f.Add([]byte("policies: [{method: GET, route: /a, action: a, remember: -1h}]"))
	f.Add([]byte("policies:\n  - {method: GET, route: /a, action: a, unenrolled: enroll}\n  - {method: POST, route: /b, action: b, unenrolled: allow}\n  - {method: PUT, route: /c, action: c, unenrolled: 'deny'}\n"))
	f.Add([]byte("policies:\n  - method: GET\n    route: /a\n    action: a\n    unenrolled: Allow\n"))
	f.Add([]byte("policies:\n  - {method: GET, route: \"/a\\tb\", action: a}\n"))
	f.Add([]byte("policies:\n  - {method: POST, route: /a, action: a, methods: [PASSKEY, SMS], attributes: [{name: n, from: form, key: n, display: true}]}\n"))
	f.Add([]byte(`{"policies": [{"method": "POST", "route": "/a", "action": "a", "methods": ["EMAIL_OTP", null], "attributes": [{"name": "n", "from": "form", "key": "n", "display": true}]}]}`))
	f.Add([]byte("\xef\xbb\xbfpolicies: []"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := policyfile.Parse(data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "stepup: ") {
				t.Fatalf("error without prefix: %v", err)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatal("no error and no policies")
		}
		cfg := validConfig()
		cfg.Policies = ps
		g, err := stepup.New(cfg)
		if err != nil {
			t.Fatalf("Parse accepted what New refuses: %v", err)
		}
		for _, p := range ps {
			method := p.Method
			if method == "*" {
				method = http.MethodPatch
			}
			rule, ok := g.Match(method, p.Route)
			if !ok || rule.Policy().Action != p.Action || rule.Policy().Remember != p.Remember || p.Remember < 0 {
				t.Fatalf("policy %+v not protected as written", p)
			}
			if u := rule.Policy().Unenrolled; u != p.Unenrolled && (p.Unenrolled != "" || u != stepup.UnenrolledDeny) {
				t.Fatalf("policy %+v: unenrolled %q, not as written", p, u)
			}
			if m := rule.Policy().Methods; !slices.Equal(m, p.Methods) {
				t.Fatalf("policy %+v: methods %q, not as written", p, m)
			}
			for i, a := range rule.Policy().Attributes {
				if a.Display != p.Attributes[i].Display {
					t.Fatalf("policy %+v: attribute %q display %t, not as written", p, a.Name, a.Display)
				}
			}
		}
	})
}

func TestRegressionParsePanicsOnTaggedEmptyNode(t *testing.T) {
	for _, doc := range []string{"policies: !\n", "policies:\n  - attributes: !foo\n"} {
		assert.NotPanics(t, func() { _, _ = policyfile.Parse([]byte(doc)) }, "%q", doc)
	}
}

// FuzzParseJSONAsYAML: a JSON document is decoded by a path of its own
// (fast on large tables); whatever it accepts, the YAML decoder, which read
// every document before, accepts too and reads the same way. It may refuse
// more (a number where a string belongs), never less.
func FuzzParseJSONAsYAML(f *testing.F) {
	f.Add([]byte(policyJSON))
	f.Add([]byte(`{"policies": [{"method": "POST", "route": "/\u0078", "action": "x", "failOpen": null, "attributes": null}]}`))
	f.Add([]byte(`{"poli\u0063ies": [{"method": "POST", "route": "/x", "action": "x", "remember": "1h"}]}`))
	f.Add([]byte("\xef\xbb\xbf {\"policies\": [{\"method\": \"GET\", \"route\": \"/a\", \"action\": \"a\", \"failOpen\": true}]}"))
	f.Add([]byte(`{"policies": [{"method": "GET", "route": "/a", "action": "a", "unenrolled": "enr\u006fll"}, {"method": "GET", "route": "/b", "action": "b", "unenrolled": null}]}`))
	f.Add([]byte(`{"policies": [{"method": "POST", "route": "/a", "action": "a", "methods": ["PASSKEY", "SMS"], "attributes": [{"name": "n", "from": "form", "key": "n", "display": true}]}]}`))
	f.Add([]byte(`{"policies": [{"method": "POST", "route": "/a", "action": "a", "methods": null, "attributes": [{"name": "n", "from": "form", "key": "n", "display": null}]}]}`))
	f.Add([]byte(`{"policies": [{"method": "GET", "route": "/a\ud83d\ude00", "action": "a", "attributes": [{"name": "n", "from": "query", "key": "k\"q"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := policyfile.Parse(data)
		if err != nil || !json.Valid(data) {
			return
		}
		var file policyfile.File
		require.NoError(t, yamlx.Unmarshal(data, &file), "accepted as JSON, refused as YAML")
		require.Len(t, ps, len(file.Policies))
		for i, e := range file.Policies {
			p := ps[i]
			assert.Equal(t, []string{e.Method, e.Route, e.Action}, []string{p.Method, p.Route, p.Action})
			assert.Equal(t, e.FailOpen, p.FailOpen)
			assert.Equal(t, e.Unenrolled, p.Unenrolled)
			if len(e.Methods) > 0 || len(p.Methods) > 0 { // [] and null both mean none
				assert.Equal(t, e.Methods, p.Methods)
			}
			var remember time.Duration
			if e.Remember != "" {
				remember, err = time.ParseDuration(e.Remember)
				require.NoError(t, err)
			}
			assert.Equal(t, remember, p.Remember)
			require.Len(t, p.Attributes, len(e.Attributes))
			for j, a := range e.Attributes {
				assert.Equal(t, stepup.Attribute{Name: a.Name, From: stepup.Source(a.From), Key: a.Key, Type: stepup.ValueType(a.Type),
					Display: a.Display}, p.Attributes[j])
			}
		}
	})
}
