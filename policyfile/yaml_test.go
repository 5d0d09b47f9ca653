package policyfile_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/internal/yamlx"
	"github.com/stepupkit/stepup/policyfile"
)

// goccy decodes data as every YAML document was decoded before the subset
// decoder: goccy/go-yaml behind internal/yamlx.
func goccy(data []byte) (policyfile.File, error) {
	var f policyfile.File
	err := yamlx.Unmarshal(data, &f)
	return f, err
}

// okYAML is a small document inside the subset, for the tests to vary.
const okYAML = "policies:\n  - method: GET\n    route: /a\n    action: a\n"

// readmeYAML is the README's example, comments and all.
const readmeYAML = `policies:
  - method: POST              # as the router dispatches it, or "*" (a GET policy also covers HEAD)
    route: /transfer          # the router's own pattern: /users/:id in echo, /users/{id} in a ServeMux
    action: transfer          # the Authsignal action code, ^[a-zA-Z0-9_-]{1,64}$
    attributes:               # sent to Authsignal as custom.<name> for its rules
      - {name: amount, from: form, key: amount, type: number}
  - method: POST
    route: /api/transfer
    action: transfer
    attributes:
      - {name: amount, from: json, key: amount, type: number}   # key is a dotted path: payee.iban
  - method: "*"
    route: /admin/*
    action: adminAccess
    remember: 5m              # a Go duration: no new challenge for this action for 5 minutes
    failOpen: false           # the default: when Authsignal is down, answer 503, not the handler
    unenrolled: deny          # the default: a user with no second factor is refused (or enroll, or allow)
`

// subsetTests are documents the subset decoder reads itself.
var subsetTests = []struct {
	name  string
	given string
}{
	{"the test table", policyYAML},
	{"the README's example", readmeYAML},
	{"a document start marker, a sequence at its key's indentation", "---\npolicies:\n- method: GET\n  route: /a\n  action: a\n"},
	{"comments, blank lines, trailing spaces, # inside a value", "--- # doc\n# c\npolicies: # the table\n  - method: GET # m\n    route: /a#b\n    action: a   \n\n    remember: 5m # five\n"},
	{"comment lines at any indentation", "policies:\n  - method: GET\n    route: /a\n# dedented\n      # indented\n    action: a\n\n\n  # between\n  - method: POST\n    route: /b\n    action: b\n"},
	{"CRLF line ends", "policies:\r\n  - method: GET\r\n    route: /a  \r\n    action: a\r\n"},
	{"single and double quotes, escapes", "policies:\n  - method: 'GE''T'\n    route: \"/a\\\"b\\\\c\\/d\\te\"\n    action: \"a\\n\"\n"},
	{"unicode inside quotes", "policies:\n  - method: GET\n    route: \"/é/ü/☃\"\n    action: 'é'\n"},
	{"deeper indentation", "policies:\n    - method: GET\n      route: /a\n      action: a\n    - method: POST\n      route: /b\n      action: b\n"},
	{"more spaces after the dash", "policies:\n  -   method: GET\n      route: /a\n      action: a\n"},
	{"empty values", "policies:\n  - method:\n    route: /a\n    action: \n    remember: # none\n    failOpen:\n    attributes:\n"},
	{"block and flow attributes, failOpen", "policies:\n  - method: GET\n    route: /a\n    action: a\n    attributes:\n    - name: n1\n      from: query\n      key: k\n    - {name: m1, from: form, key: k, type: number}\n    failOpen: true\n"},
	{"unenrolled, block and flow, quoted", "policies:\n  - method: GET\n    route: /a\n    action: a\n    unenrolled: enroll # send them to enrol\n  - {method: POST, route: /b, action: b, unenrolled: 'allow'}\n  - {method: PUT, route: /c, action: c, unenrolled: \"deny\"}\n"},
	{"durations", "policies:\n  - {method: GET, route: /a, action: a, remember: 1h30m}\n  - {method: GET, route: /b, action: b, remember: 300ms}\n  - {method: GET, route: /c, action: c, remember: .5h, failOpen: false}\n"},
	{"colons, spaces and punctuation inside block values", "policies:\n  - method: GET\n    route: /users/:id/{x}/[y],z?q=1&r\n    action: a b  c\n"},
	{"spaces around flow values, comments after flow mappings", "policies:\n  - {method: GET , route: /a ,action: a b}  # c\n  - { method: \"POST\", route: '/b', action: b }\n"},
	{"the benchmark's entries", "policies:\n  - method: POST\n    route: /r/1/{id}\n    action: a1\n    remember: 5m\n    attributes:\n      - {name: amount, from: form, key: amount, type: number}\n"},
	{"nothing but a comment", "# only a comment\n"},
	{"an empty document", ""},
	{"a null table", "policies:\n"},
	{"no final newline", strings.TrimSuffix(okYAML, "\n")},
}

// TestYAMLSubset: the documents the subset decoder reads itself, each read
// exactly as goccy/go-yaml reads it.
func TestYAMLSubset(t *testing.T) {
	for _, tc := range subsetTests {
		t.Run(tc.name, func(t *testing.T) {
			got, fellBack, err := policyfile.DecodeYAML([]byte(tc.given))
			require.NoError(t, err)
			require.False(t, fellBack, "read by goccy/go-yaml, not the subset")
			want, err := goccy([]byte(tc.given))
			require.NoError(t, err)
			assert.Equal(t, want, got)
			assert.True(t, reflect.DeepEqual(want, got))
		})
	}
}

// refusalTests are documents the subset decoder refuses itself.
var refusalTests = []struct {
	name   string
	given  string
	expect string
}{
	{"repeated key in a block mapping", "policies:\n  - method: GET\n    method: POST\n    route: /a\n    action: a\n", `[3:5] mapping key "method" already defined at [2:5]`},
	{"repeated key in a flow mapping", "policies:\n  - {method: GET, route: /a, action: a, method: PUT}\n", `[2:41] mapping key "method" already defined at [2:6]`},
	{"repeated top-level key", okYAML + "policies:\n  - method: GET\n    route: /b\n    action: b\n", `[5:1] mapping key "policies" already defined at [1:1]`},
	{"repeated attribute key", okYAML + "    attributes:\n      - {name: n1, from: query, key: k, name: m1}\n", `[6:41] mapping key "name" already defined at [6:10]`},
	{"repeated failOpen", okYAML + "    failOpen: false\n    failOpen: true\n", `[6:5] mapping key "failOpen" already defined at [5:5]`},
	{"unknown policy field", okYAML + "    version: 2\n", `[5:5] unknown field "version"`},
	{"unknown top-level field", okYAML + "version: 2\n", `[5:1] unknown field "version"`},
	{"unknown attribute field", okYAML + "    attributes:\n      - name: n1\n        from: query\n        key: k\n        kind: x\n", `[9:9] unknown field "kind"`},
	{"unknown field in a flow mapping", "policies:\n  - {method: GET, route: /a, action: a, custom: f}\n", `[2:41] unknown field "custom"`},
	{"field names match exactly", "policies:\n  - Method: GET\n", `[2:5] unknown field "Method"`},
	{"the Go field name", okYAML + "    FailOpen: true\n", `[5:5] unknown field "FailOpen"`},
}

// TestYAMLSubsetRefuses: the subset decoder refuses unknown fields and
// repeated keys itself, with [line:column], as goccy/go-yaml refuses them;
// Parse reports the refusal.
func TestYAMLSubsetRefuses(t *testing.T) {
	for _, tc := range refusalTests {
		t.Run(tc.name, func(t *testing.T) {
			_, fellBack, err := policyfile.DecodeYAML([]byte(tc.given))
			require.False(t, fellBack)
			require.EqualError(t, err, tc.expect)
			_, err = goccy([]byte(tc.given))
			require.Error(t, err, "goccy/go-yaml refuses it too")

			ps, err := policyfile.Parse([]byte(tc.given))
			require.Error(t, err)
			assert.Nil(t, ps)
			assert.Equal(t, "stepup: policy file: "+tc.expect, err.Error())
		})
	}
}

// fallbackTests are documents outside the subset.
var fallbackTests = []struct {
	name  string
	given string
}{
	{"anchor and alias", "policies:\n  - &x {method: GET, route: /a, action: a}\n  - *x\n"},
	{"anchor on a block mapping", "policies:\n  - &x\n    method: GET\n    route: /a\n    action: a\n"},
	{"tag", "policies:\n  - !!map {method: GET, route: /a, action: a}\n"},
	{"tag on a value", strings.Replace(okYAML, "GET", "!!str GET", 1)},
	{"literal block scalar", strings.Replace(okYAML, "/a", "|\n      /a", 1)},
	{"folded block scalar", strings.Replace(okYAML, "/a", ">-\n      /a", 1)},
	{"a second document", okYAML + "---\npolicies: []\n"},
	{"document end marker", okYAML + "...\n"},
	{"directive", "%YAML 1.2\n---\n" + okYAML},
	{"tab indentation", "policies:\n\t- method: GET\n"},
	{"a tab after a value", strings.Replace(okYAML, "/a", "/a\t", 1)},
	{"byte order mark", "\xef\xbb\xbf" + okYAML},
	{"NEL", strings.Replace(okYAML, "/a", "/a\u0085", 1)},
	{"line separator", strings.Replace(okYAML, "/a", "/a\u2028", 1)},
	{"lone CR", strings.Replace(okYAML, "\n", "\r", 1)},
	{"control character", strings.Replace(okYAML, "/a", "/a\x01", 1)},
	{"invalid UTF-8 in a comment", okYAML + "# \xff\n"},
	{"non-ASCII plain scalar", strings.Replace(okYAML, "/a", "/é", 1)},
	{"key:value without a space", strings.Replace(okYAML, "method: GET", "method:GET", 1)},
	{"multi-line plain scalar", strings.Replace(okYAML, "/a", "/a\n      /b", 1)},
	{"indentation that belongs to nothing", strings.Replace(okYAML, "    action", "   action", 1)},
	{"yes", okYAML + "    failOpen: yes\n"},
	{"True", okYAML + "    failOpen: True\n"},
	{"quoted boolean", okYAML + "    failOpen: 'true'\n"},
	{"a string where a boolean belongs", okYAML + "    failOpen: sure\n"},
	{"null", strings.Replace(okYAML, "GET", "null", 1)},
	{"~", strings.Replace(okYAML, "GET", "~", 1)},
	{"n", strings.Replace(okYAML, "action: a", "action: n", 1)},
	{"off", strings.Replace(okYAML, "action: a", "action: Off", 1)},
	{"integer", strings.Replace(okYAML, "action: a", "action: 123", 1)},
	{"hex number", okYAML + "    remember: 0x10\n"},
	{"octal-looking number", strings.Replace(okYAML, "action: a", "action: 0755", 1)},
	{"float", strings.Replace(okYAML, "action: a", "action: 1.5", 1)},
	{"exponent", strings.Replace(okYAML, "action: a", "action: 1e3", 1)},
	{"underscores", strings.Replace(okYAML, "action: a", "action: 1_000", 1)},
	{".inf", strings.Replace(okYAML, "action: a", "action: .Inf", 1)},
	{".nan", strings.Replace(okYAML, "action: a", "action: .NaN", 1)},
	{"date", strings.Replace(okYAML, "action: a", "action: 2001-12-14", 1)},
	{"timestamp", strings.Replace(okYAML, "action: a", "action: 2001-12-14T21:59:43Z", 1)},
	{"sexagesimal", strings.Replace(okYAML, "action: a", "action: 12:30", 1)},
	{"flow sequence", "policies:\n  - {method: GET, route: /a, action: a, attributes: [{name: n1, from: query, key: k}]}\n"},
	{"empty flow sequence", okYAML + "    attributes: []\n"},
	{"flow table", "policies: [{method: GET, route: /a, action: a}]\n"},
	{"a JSON-like YAML document", "{\"policies\": [{\"method\": \"GET\", \"route\": \"/a\", \"action\": \"a\"},]}"},
	{"colon inside a flow value", "policies:\n  - {method: GET, route: /users/:id, action: a}\n"},
	{"braces inside a flow value", "policies:\n  - {method: GET, route: /users/{id}, action: a}\n"},
	{"a sequence under a flow mapping", "policies:\n  - {method: GET, route: /a, action: a}\n    - x\n"},
	{"a mapping under a value", strings.Replace(okYAML, "action: a", "action:\n      x: y", 1)},
	{"colon-space inside a value", strings.Replace(okYAML, "action: a", "action: a: b", 1)},
	{"value ending in a colon", strings.Replace(okYAML, "/a", "/a:", 1)},
	{"a dash alone", okYAML + "  -\n    method: PUT\n    route: /b\n    action: b\n"},
	{"a dash and a comment", okYAML + "  - # c\n    method: PUT\n    route: /b\n    action: b\n"},
	{"a dash without a space", okYAML + "  -method: PUT\n"},
	{"nested sequence", okYAML + "  - - x\n"},
	{"a scalar item", okYAML + "  - x\n"},
	{"indented top level", "  policies:\n    - method: GET\n      route: /a\n      action: a\n"},
	{"text after a quoted value", strings.Replace(okYAML, "GET", `"GET" x`, 1)},
	{"a comment without a space after a quote", strings.Replace(okYAML, "GET", `"GET"#c`, 1)},
	{"hex escape", strings.Replace(okYAML, "GET", `"G\x45T"`, 1)},
	{"unicode escape", strings.Replace(okYAML, "GET", `"G\u0045T"`, 1)},
	{"line-folding escape", strings.Replace(okYAML, "GET", `"G\ T"`, 1)},
	{"multi-line quoted scalar", strings.Replace(okYAML, "/a", "\"/a\n      b\"", 1)},
	{"unterminated quote", strings.Replace(okYAML, "/a", "'/a", 1)},
	{"quoted key", strings.Replace(okYAML, "route:", `"route":`, 1)},
	{"space before the colon", strings.Replace(okYAML, "route:", "route :", 1)},
	{"explicit key", strings.Replace(okYAML, "route: /a", "? route\n    : /a", 1)},
	{"merge key", okYAML + "    <<: {remember: 5m}\n"},
	{"value starting with an indicator", strings.Replace(okYAML, "GET", "*", 1)},
	{"value starting with a dash", okYAML + "    remember: -5m\n"},
	{"value starting with @", strings.Replace(okYAML, "action: a", "action: @a", 1)},
	{"empty flow value", "policies:\n  - {method: , route: /a, action: a}\n"},
	{"empty flow mapping", "policies:\n  - {}\n"},
	{"flow key without a space", "policies:\n  - {method:GET, route: /a, action: a}\n"},
	{"trailing comma in a flow mapping", "policies:\n  - {method: GET, route: /a, action: a,}\n"},
	{"text after a flow mapping", "policies:\n  - {method: GET, route: /a, action: a} x\n"},
	{"multi-line flow mapping", "policies:\n  - {method: GET,\n     route: /a, action: a}\n"},
	{"a scalar table", "policies: transfer\n"},
	{"a top-level sequence", "- a\n- b\n"},
	{"a top-level scalar", "policies\n"},
}

// TestYAMLSubsetFallsBack: what lies outside the subset is neither read nor
// refused by the subset decoder but left to goccy/go-yaml, so that Parse
// reads it, or refuses it, exactly as before.
func TestYAMLSubsetFallsBack(t *testing.T) {
	for _, tc := range fallbackTests {
		t.Run(tc.name, func(t *testing.T) {
			_, fellBack, err := policyfile.DecodeYAML([]byte(tc.given))
			require.NoError(t, err)
			assert.True(t, fellBack, "the subset read it")

			ps, err := policyfile.Parse([]byte(tc.given))
			want, goccyErr := goccy([]byte(tc.given))
			if goccyErr != nil {
				require.Error(t, err)
				assert.Equal(t, "stepup: policy file: "+goccyErr.Error(), err.Error(), "Parse reports goccy/go-yaml's error")
				return
			}
			if err == nil {
				require.Len(t, ps, len(want.Policies))
				for i, e := range want.Policies {
					assert.Equal(t, []string{e.Method, e.Route, e.Action}, []string{ps[i].Method, ps[i].Route, ps[i].Action})
				}
			}
		})
	}
}

// yamlSeeds are more tricky documents for the fuzz target.
var yamlSeeds = []string{
	okYAML + "    attributes:\n      - {name: n1, from: query, key: k, display: true}\n      - name: n2\n        from: form\n        key: k\n        display: false\n",
	okYAML + "    methods:\n      - PASSKEY\n",
	okYAML + "  - method: GET\n    route: /a\n    action: a\n",
	okYAML + "    attributes:\n      - {name: n1, from: query, key: k}\n      - {name: n1, from: query, key: k}\n",
	strings.Replace(okYAML, "/a", `"/a\tb"`, 1),
	strings.Replace(okYAML, "/a", `'/a\tb'`, 1),
	strings.Replace(okYAML, "/a", "/a # c # d", 1),
	strings.Replace(okYAML, "/a", "/a?b=c&d=*e!f|g>h%i@j`k'l\"m", 1),
	strings.Replace(okYAML, "/a", "/a  -  b  ?  c", 1),
	"policies:\n  - method: GET\n    route: /a\n    action: a\n    attributes:\n    - name: n1\n      from: query\n      key: k\n  - method: PUT\n    route: /b\n    action: b\n",
	"policies:\n- {method: GET, route: /a, action: a}\n-   {method: PUT, route: /b, action: b}\n",
	"policies:\n  - method: GET\n    route: /a\n    action: a\n  attributes:\n",
}

// FuzzParseYAMLAsGoccy: whatever the subset decoder accepts, goccy/go-yaml
// (which read every document before) accepts and decodes into the same
// File; whatever the subset decoder refuses, goccy/go-yaml refuses too.
// Documents outside the subset go to goccy/go-yaml unchanged.
func FuzzParseYAMLAsGoccy(f *testing.F) {
	for _, tc := range subsetTests {
		f.Add([]byte(tc.given))
	}
	for _, tc := range refusalTests {
		f.Add([]byte(tc.given))
	}
	for _, tc := range fallbackTests {
		f.Add([]byte(tc.given))
	}
	for _, s := range yamlSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(sameAsGoccy)
}

// sameAsGoccy fails unless data falls back, or the subset decoder and
// goccy/go-yaml both refuse it, or both read it into the same File.
func sameAsGoccy(t *testing.T, data []byte) {
	got, fellBack, err := policyfile.DecodeYAML(data)
	if fellBack {
		return
	}
	want, goccyErr := goccy(data)
	if err != nil {
		if goccyErr == nil {
			t.Fatalf("the subset refuses what goccy/go-yaml accepts: %v\n%q", err, data)
		}
		return
	}
	if goccyErr != nil {
		t.Fatalf("the subset accepts what goccy/go-yaml refuses: %v\n%q", goccyErr, data)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("the subset reads %q differently:\n got %#v\nwant %#v", data, got, want)
	}
}

// FuzzYAMLValuesAsGoccy: FuzzParseYAMLAsGoccy with the document's shape
// fixed and its values fuzzed, so that the fuzzer spends its time on
// scalars (plain, quoted, commented, in block and flow context) rather
// than on misspelt keys.
func FuzzYAMLValuesAsGoccy(f *testing.F) {
	f.Add("GET", "/a/{id}", "a b", "5m", "false", uint8(0))
	f.Add(`"GET"`, "'/a''b'", `"a\"b\\c\/d\n\t"`, "1h30m # c", "true", uint8(1))
	f.Add("GET # c", "/a#b", "a:b", "0x10", "", uint8(2))
	f.Add("'*'", "/users/:id", "yes", "~", "True", uint8(3))
	f.Add("POST", "/a?b=c&d=e", "a-b_c", ".5h", "false # no", uint8(7))
	f.Add("GET ", " /a ", "é", "2001-12-14", "'true'", uint8(5))
	f.Fuzz(func(t *testing.T, method, route, action, remember, failOpen string, style uint8) {
		var b strings.Builder
		b.WriteString("policies:\n")
		dash := "  - "
		if style&1 != 0 {
			dash = "- "
		}
		in := strings.Repeat(" ", len(dash))
		if style&2 != 0 {
			b.WriteString(dash + "{method: " + method + ", route: " + route + ", action: " + action + ", remember: " + remember + "}\n")
		} else {
			b.WriteString(dash + "method: " + method + "\n" + in + "route: " + route + "\n" + in + "action: " + action + "\n" +
				in + "remember: " + remember + "\n" + in + "failOpen: " + failOpen + "\n" + in + "attributes:\n")
			if style&4 != 0 {
				b.WriteString(in + "  - {name: " + action + ", from: " + method + ", key: " + route + ", type: " + remember + "}\n")
			} else {
				b.WriteString(in + "- name: " + action + "\n" + in + "  from: " + method + "\n" + in + "  key: " + route + "\n" + in + "  type: " + remember + "\n")
			}
		}
		doc := b.String()
		if style&8 != 0 {
			doc = strings.ReplaceAll(doc, "\n", "\r\n")
		}
		sameAsGoccy(t, []byte(doc))
	})
}
