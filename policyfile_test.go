package stepup_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup"
)

// FuzzParsePolicies: a policy file never panics the parser, and whatever
// it accepts, New accepts too and protects exactly as written.
func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte(policyYAML))
	f.Add([]byte(policyJSON))
	f.Add([]byte("policies:\n  - {method: GET, route: /a, action: a, remember: 1ns}\n"))
	f.Add([]byte("policies:\n  - {method: '*', route: /, action: a}\n  - {method: GET, route: /{$}, action: b}\n"))
	f.Add([]byte("policies:\n  - &p {method: GET, route: /a, action: a}\n  - *p\n"))
	f.Add([]byte("policies:\n  - method: POST\n    route: /x/../y\n    action: x\n"))
	f.Add([]byte(`{"policies": [{"method": "PUT", "route": "/u/{id}", "action": "u", "attributes": [{"name": "n", "from": "path", "key": "id", "type": "number"}]}]}`))
	f.Add([]byte("policies: [{method: GET, route: /a, action: a, remember: -1h}]"))
	f.Add([]byte("policies:\n  - {method: GET, route: \"/a\\tb\", action: a}\n"))
	f.Add([]byte("\xef\xbb\xbfpolicies: []"))
	f.Add([]byte("- a\n- b\n"))
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := stepup.ParsePolicies(data)
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
			t.Fatalf("ParsePolicies accepted what New refuses: %v", err)
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
		}
	})
}

func TestRegressionParsePoliciesPanicsOnTaggedEmptyNode(t *testing.T) {
	for _, doc := range []string{"policies: !\n", "policies:\n  - attributes: !foo\n"} {
		assert.NotPanics(t, func() { _, _ = stepup.ParsePolicies([]byte(doc)) }, "%q", doc)
	}
}
