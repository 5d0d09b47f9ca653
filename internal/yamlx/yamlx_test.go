package yamlx

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRegressionDecoderPanicsOnTaggedEmptyNode: documents on which
// goccy/go-yaml v1.19.2 panics with a nil dereference (found by
// FuzzParsePolicies in policyfile and FuzzParseRules in
// authsignal/emulator) are errors, not panics.
func TestRegressionDecoderPanicsOnTaggedEmptyNode(t *testing.T) {
	type attribute struct {
		Name string `yaml:"name"`
	}
	type entry struct {
		Attributes []attribute `yaml:"attributes"`
		Rules      []any       `yaml:"rules"`
	}
	type doc struct {
		Policies []entry          `yaml:"policies"`
		Actions  map[string]entry `yaml:"actions"`
	}
	for _, given := range []string{
		"policies: !\n",
		"policies:\n  - attributes: !foo\n",
		"actions:\n 0:\n  rules:\n      ! 0000000000000000000000000000000000000000000000000000000000000000000000000000000000000",
	} {
		var v doc
		var err error
		require.NotPanics(t, func() { err = Unmarshal([]byte(given), &v) }, "%q", given)
		require.Error(t, err, "%q", given)
		assert.Contains(t, err.Error(), "malformed document", "%q", given)
	}
}

func TestUnmarshal(t *testing.T) {
	type doc struct {
		Name  string `yaml:"name" json:"name"`
		Count int    `yaml:"count" json:"count"`
	}
	tests := []struct {
		name   string
		given  string
		expect doc
		err    string
	}{
		{name: "YAML", given: "name: a\ncount: 2\n", expect: doc{Name: "a", Count: 2}},
		{name: "JSON", given: `{"name": "a", "count": 2}`, expect: doc{Name: "a", Count: 2}},
		{name: "unknown field", given: "name: a\ncont: 2\n", err: "cont"},
		{name: "syntax error", given: "name: [a\n", err: "["},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got doc
			err := Unmarshal([]byte(tc.given), &got)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.expect, got)
		})
	}
}
