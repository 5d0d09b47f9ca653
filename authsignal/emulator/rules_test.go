package emulator_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func TestLoadRulesExampleFile(t *testing.T) {
	r, err := emulator.LoadRules(filepath.Join("testdata", "rules.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "ALLOW", r.DefaultState)
	require.Contains(t, r.Actions, "transfer")
	assert.Len(t, r.Actions["transfer"].Rules, 4)
	assert.Len(t, r.Actions["transfer"].Rules[3].When, 2)
	assert.True(t, r.Actions["changeEmail"].Enrol)

	srv := start(t, emulator.Config{Rules: r, Users: []emulator.User{alice}})
	assert.Equal(t, "BLOCK", track(t, srv, "alice", "transfer", map[string]any{"ipAddress": "198.51.100.66"}).State)
	got := track(t, srv, "alice", "transfer", map[string]any{"deviceId": "d", "custom": map[string]any{"country": "IR", "amount": 5}})
	assert.Equal(t, []string{"new-device"}, got.RuleIDs, "rules apply in order")
	assert.Equal(t, "CHALLENGE_REQUIRED", got.State)
}

func TestParseRules(t *testing.T) {
	tests := []struct {
		name      string
		given     string
		expectErr string // substring; "" = valid
	}{
		{"empty", ``, ""},
		{"json", `{"defaultState":"BLOCK","actions":{"transfer":{"rules":[{"id":"a","when":{"field":"custom.amount","op":"gte","value":"10"},"state":"REVIEW"}]}}}`, ""},
		{"rule without conditions", `actions: {a: {rules: [{id: always, state: BLOCK}]}}`, ""},
		{"exists without value", `actions: {a: {rules: [{id: r, when: {field: email, op: exists}, state: BLOCK}]}}`, ""},
		{"unknown top-level key", `defaultstate: ALLOW`, "unknown field"},
		{"unknown rule key", `actions: {a: {rules: [{id: r, state: BLOCK, priority: 1}]}}`, "unknown field"},
		{"unknown condition key", `actions: {a: {rules: [{id: r, when: {field: email, op: eq, val: x}, state: BLOCK}]}}`, "unknown field"},
		{"unknown default state", `defaultState: MAYBE`, `defaultState: unknown state "MAYBE"`},
		{"unknown action default", `actions: {a: {default: DENY}}`, `actions.a.default: unknown state "DENY"`},
		{"result state not allowed in rules", `actions: {a: {rules: [{id: r, state: CHALLENGE_SUCCEEDED}]}}`, `actions.a.rules[0] (r): unknown state`},
		{"missing state", `actions: {a: {rules: [{id: r}]}}`, `actions.a.rules[0] (r): unknown state ""`},
		{"missing id", `actions: {a: {rules: [{state: BLOCK}]}}`, `actions.a.rules[0]: missing id`},
		{"duplicate id", `actions: {a: {rules: [{id: r, state: BLOCK}, {id: r, state: ALLOW}]}}`, `actions.a.rules[1] (r): duplicate id`},
		{"bad action code", `actions: {"no spaces": {default: ALLOW}}`, `actions.no spaces: invalid action code`},
		{"unknown op", `actions: {a: {rules: [{id: r, when: {field: email, op: like, value: x}, state: BLOCK}]}}`, `actions.a.rules[0] (r): when[0]: unknown op "like"`},
		{"unknown field", `actions: {a: {rules: [{id: r, when: {field: amount, op: gt, value: 1}, state: BLOCK}]}}`, `unknown field "amount"`},
		{"empty custom key", `actions: {a: {rules: [{id: r, when: {field: custom., op: gt, value: 1}, state: BLOCK}]}}`, `empty key`},
		{"gt needs a number", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: gt, value: lots}, state: BLOCK}]}}`, `needs a number`},
		{"eq needs a scalar", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: eq, value: [1]}, state: BLOCK}]}}`, `needs a string, number or boolean`},
		{"eq needs a value", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: eq}, state: BLOCK}]}}`, `needs a string, number or boolean`},
		{"in needs a list", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: in, value: x}, state: BLOCK}]}}`, `needs a list`},
		{"bad CIDR", `actions: {a: {rules: [{id: r, when: {field: ipAddress, op: in, value: ["10.0.0.0/33"]}, state: BLOCK}]}}`, `is not an IP address or CIDR`},
		{"exists needs a bool", `actions: {a: {rules: [{id: r, when: {field: email, op: exists, value: yes please}, state: BLOCK}]}}`, `true or false`},
		{"unknown on custom", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: unknown}, state: BLOCK}]}}`, `applies to deviceId or ipAddress`},
		{"unknown with a value", `actions: {a: {rules: [{id: r, when: {field: deviceId, op: unknown, value: x}, state: BLOCK}]}}`, `takes no value`},
		{"second condition named", `actions: {a: {rules: [{id: r, when: [{field: email, op: exists}, {field: x, op: eq, value: 1}], state: BLOCK}]}}`, `when[1]: unknown field "x"`},
		{"not YAML", `actions: [`, "emulator: rules:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := emulator.ParseRules([]byte(tt.given))
			if tt.expectErr == "" {
				require.NoError(t, err)
				assert.NotNil(t, r)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.expectErr)
		})
	}
}

func TestRulesBuiltInGo(t *testing.T) {
	rules := &emulator.Rules{Actions: map[string]emulator.ActionRules{
		"transfer": {Rules: []emulator.Rule{{
			ID:    "big",
			When:  emulator.Conditions{{Field: "custom.amount", Op: "gte", Value: 100}},
			State: emulator.StateChallengeRequired,
		}}},
	}}
	srv := start(t, emulator.Config{Rules: rules, AutoEnroll: true})
	assert.Equal(t, "CHALLENGE_REQUIRED", track(t, srv, "u", "transfer", map[string]any{"custom": map[string]any{"amount": 100}}).State)
	assert.Equal(t, "ALLOW", track(t, srv, "u", "transfer", map[string]any{"custom": map[string]any{"amount": 99.5}}).State)
}

func TestLoadRulesMissingFile(t *testing.T) {
	_, err := emulator.LoadRules(filepath.Join(t.TempDir(), "nope.yaml"))
	assert.ErrorIs(t, err, os.ErrNotExist)
}

func TestRuleOperators(t *testing.T) {
	tests := []struct {
		name   string
		when   string
		given  map[string]any // track body
		expect bool           // the rule matches
	}{
		{"eq number", `{field: custom.n, op: eq, value: 3}`, custom("n", 3), true},
		{"eq number vs numeric string", `{field: custom.n, op: eq, value: 3}`, custom("n", "3.0"), true},
		{"eq number vs other", `{field: custom.n, op: eq, value: 3}`, custom("n", 4), false},
		{"eq string is exact", `{field: custom.s, op: eq, value: Vip}`, custom("s", "vip"), false},
		{"eq string vs number", `{field: custom.s, op: eq, value: "3"}`, custom("s", 3), false},
		{"eq bool", `{field: custom.b, op: eq, value: true}`, custom("b", true), true},
		{"eq bool vs string", `{field: custom.b, op: eq, value: true}`, custom("b", "true"), false},
		{"ne", `{field: custom.s, op: ne, value: a}`, custom("s", "b"), true},
		{"ne same", `{field: custom.s, op: ne, value: a}`, custom("s", "a"), false},
		{"ne on a missing field", `{field: custom.s, op: ne, value: a}`, custom("other", 1), false},
		{"gte boundary", `{field: custom.n, op: gte, value: 10}`, custom("n", 10), true},
		{"lt", `{field: custom.n, op: lt, value: 10}`, custom("n", 9.99), true},
		{"lte numeric string rule value", `{field: custom.n, op: lte, value: "10"}`, custom("n", 10), true},
		{"lt non-number", `{field: custom.n, op: lt, value: 10}`, custom("n", true), false},
		{"gt infinite string", `{field: custom.n, op: gt, value: 10}`, custom("n", "Inf"), false},
		{"in numbers", `{field: custom.n, op: in, value: [1, 2, 3]}`, custom("n", 2), true},
		{"in strings", `{field: custom.s, op: in, value: [a, b]}`, custom("s", "c"), false},
		{"contains substring", `{field: userAgent, op: contains, value: curl}`, map[string]any{"userAgent": "curl/8.0"}, true},
		{"contains list element", `{field: custom.l, op: contains, value: 2}`, custom("l", []any{1, 2}), true},
		{"contains on a number", `{field: custom.n, op: contains, value: 1}`, custom("n", 1), false},
		{"exists", `{field: email, op: exists}`, map[string]any{"email": "a@b"}, true},
		{"exists on null", `{field: custom.n, op: exists}`, custom("n", nil), false},
		{"not exists", `{field: email, op: exists, value: false}`, map[string]any{}, true},
		{"path through a non-object", `{field: custom.a.b, op: exists}`, custom("a", "x"), false},
		{"ip in on IPv4-mapped IPv6", `{field: ipAddress, op: in, value: ["10.0.0.0/8"]}`, map[string]any{"ipAddress": "::ffff:10.1.1.1"}, true},
		{"ip in on garbage", `{field: ipAddress, op: in, value: ["10.0.0.0/8"]}`, map[string]any{"ipAddress": "ten"}, false},
		{"unknown ip", `{field: ipAddress, op: unknown}`, map[string]any{"ipAddress": "10.1.1.1"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, emulator.Config{AutoEnroll: true, Rules: mustRules(t,
				`actions: {a: {rules: [{id: r, when: `+tt.when+`, state: BLOCK}]}}`)})
			got := track(t, srv, "u", "a", tt.given)
			assert.Equal(t, tt.expect, got.State == "BLOCK", "state %s", got.State)
		})
	}
}

func custom(k string, v any) map[string]any { return map[string]any{"custom": map[string]any{k: v}} }

func TestChallengeByDefault(t *testing.T) {
	tests := []struct {
		name   string
		given  string // rules file; "" = no rules
		action string
		expect string // state with ChallengeByDefault
		zero   string // state with the zero Config's ALLOW fallback
	}{
		{"no rules: every action", ``, "anything", "CHALLENGE_REQUIRED", "ALLOW"},
		{"an action the rules do not list", `actions: {a: {default: BLOCK}}`, "other", "CHALLENGE_REQUIRED", "ALLOW"},
		{"a listed action whose rules do not match", `actions: {a: {rules: [{id: r, when: {field: custom.x, op: exists}, state: BLOCK}]}}`, "a", "CHALLENGE_REQUIRED", "ALLOW"},
		{"a matching rule wins", `actions: {a: {rules: [{id: r, state: BLOCK}]}}`, "a", "BLOCK", "BLOCK"},
		{"the action's default wins", `actions: {a: {default: ALLOW}}`, "a", "ALLOW", "ALLOW"},
		{"the file's defaultState wins", `defaultState: ALLOW`, "anything", "ALLOW", "ALLOW"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rules *emulator.Rules
			if tt.given != "" {
				rules = mustRules(t, tt.given)
			}
			dev := start(t, emulator.Config{Rules: rules, AutoEnroll: true, ChallengeByDefault: true})
			assert.Equal(t, tt.expect, track(t, dev, "u", tt.action, nil).State)
			faithful := start(t, emulator.Config{Rules: rules, AutoEnroll: true})
			assert.Equal(t, tt.zero, track(t, faithful, "u", tt.action, nil).State)
		})
	}
}

func TestDevModeChallengesAUserOnFirstSight(t *testing.T) {
	srv := start(t, emulator.Config{AutoEnroll: true, ChallengeByDefault: true})
	got := track(t, srv, "never-seen", "transfer", nil)
	assert.Equal(t, "CHALLENGE_REQUIRED", got.State)
	assert.True(t, got.IsEnrolled)
	assert.Equal(t, []string{"EMAIL_OTP"}, got.EnrolledVerificationMethods)
}

func TestChallengeByDefaultLeavesUnenrolledUsersAllowed(t *testing.T) {
	var lines []string
	var mu sync.Mutex
	srv := start(t, emulator.Config{ChallengeByDefault: true, Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}})
	got := track(t, srv, "bob", "transfer", nil)
	assert.Equal(t, "ALLOW", got.State, "Authsignal lets a user without an authenticator through")
	assert.False(t, got.IsEnrolled)

	mu.Lock()
	defer mu.Unlock()
	require.Len(t, lines, 1)
	assert.Contains(t, lines[0], `state=ALLOW`)
	assert.Contains(t, lines[0], `why="CHALLENGE_REQUIRED became ALLOW: user not enrolled`, "the log says why the challenge became ALLOW")
}

func TestTrackLogSaysNothingExtraWhenNotDowngraded(t *testing.T) {
	var lines []string
	var mu sync.Mutex
	srv := start(t, emulator.Config{AutoEnroll: true, ChallengeByDefault: true, Logf: func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}})
	track(t, srv, "alice", "transfer", nil)
	mu.Lock()
	defer mu.Unlock()
	require.Len(t, lines, 1)
	assert.Equal(t, `emulator: track user="alice" action="transfer" state=CHALLENGE_REQUIRED rules=[]`, lines[0])
}
