package emulator

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/stepupkit/stepup/internal/yamlx"
)

// Rules decide the state of tracked actions. The zero value allows every
// action. See the package documentation for the file format.
type Rules struct {
	// DefaultState is the state of actions not listed in Actions.
	// Default ALLOW (CHALLENGE_REQUIRED with Config.ChallengeByDefault).
	DefaultState string `yaml:"defaultState,omitempty" json:"defaultState,omitempty"`
	// Actions maps action codes to their rules.
	Actions map[string]ActionRules `yaml:"actions,omitempty" json:"actions,omitempty"`
}

// ActionRules are the rules of one action code.
type ActionRules struct {
	// Default is the state when no rule matches. Default: Rules.DefaultState.
	Default string `yaml:"default,omitempty" json:"default,omitempty"`
	// Enrol lets users without an authenticator enrol an email OTP on the
	// hosted page when Default is CHALLENGE_REQUIRED.
	Enrol bool `yaml:"enrol,omitempty" json:"enrol,omitempty"`
	// Methods are the verification methods the action accepts (MethodEmailOTP,
	// MethodSMS, MethodAuthenticatorApp, MethodPasskey), whichever rule
	// decides its state. Default none: any method the user has enrolled.
	// Track answers allowedVerificationMethods = Methods ∩ the user's
	// methods; the hosted page offers only those, and enrols only Methods.
	Methods []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	// Rules are tried in order; the first whose conditions all hold wins.
	Rules []Rule `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// Rule sets State when all its conditions hold.
type Rule struct {
	// ID is reported in the track response's ruleIds. Required, unique per
	// action.
	ID string `yaml:"id" json:"id"`
	// When holds the conditions, all of which must hold; none means always.
	// In a file it is one condition or a list of them.
	When Conditions `yaml:"when,omitempty" json:"when,omitempty"`
	// State is ALLOW, BLOCK, CHALLENGE_REQUIRED or REVIEW_REQUIRED (REVIEW).
	State string `yaml:"state" json:"state"`
	// Enrol challenges users without an authenticator too: the hosted page
	// lets them enrol an email OTP. Without it, such users get ALLOW with
	// isEnrolled false, as with Authsignal.
	Enrol bool `yaml:"enrol,omitempty" json:"enrol,omitempty"`
}

// Conditions are ANDed conditions. In a file, a single condition may be
// written without the list.
type Conditions []Condition

// UnmarshalYAML accepts one condition or a list of them.
func (cs *Conditions) UnmarshalYAML(unmarshal func(any) error) error {
	var raw any
	if err := unmarshal(&raw); err != nil {
		return err
	}
	switch raw.(type) {
	case nil:
		*cs = nil
		return nil
	case []any:
		var list []Condition
		if err := unmarshal(&list); err != nil {
			return err
		}
		*cs = list
		return nil
	default:
		var c Condition
		if err := unmarshal(&c); err != nil {
			return err
		}
		*cs = Conditions{c}
		return nil
	}
}

// Condition compares a field of the track request with Value.
//
// Fields: custom.<key>[.<key>...] (the track's custom attributes), deviceId,
// ipAddress, userAgent, email, phoneNumber, username, scope, locale.
//
// Ops: eq, ne, gt, gte, lt, lte, in, contains, exists, unknown. A missing
// field matches only exists:false and unknown.
type Condition struct {
	Field string `yaml:"field" json:"field"`
	Op    string `yaml:"op" json:"op"`
	Value any    `yaml:"value,omitempty" json:"value,omitempty"`
}

// ParseRules parses rules from YAML or JSON, rejecting unknown keys, fields,
// ops and states with an error naming the offending entry.
func ParseRules(data []byte) (*Rules, error) {
	var r Rules
	if err := yamlx.Unmarshal(data, &r); err != nil { // strict, and a parser panic is an error
		return nil, fmt.Errorf("emulator: rules: %w", err)
	}
	if _, err := compileRules(&r); err != nil {
		return nil, err
	}
	return &r, nil
}

// LoadRules reads and parses a rules file.
func LoadRules(path string) (*Rules, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("emulator: rules: %w", err)
	}
	return ParseRules(data)
}

var actionCodeRE = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// ruleSet is Rules compiled: values converted and checked once.
type ruleSet struct {
	defaultState string
	actions      map[string]*actionSet
}

type actionSet struct {
	def     string
	enrol   bool
	methods []string // nil: any
	rules   []compiledRule
}

type compiledRule struct {
	id, state string
	enrol     bool
	conds     []compiledCond
}

type compiledCond struct {
	field    string
	path     []string // custom.<path>
	op       string
	want     scalar
	list     []scalar
	prefixes []netip.Prefix // op in on ipAddress
}

// scalar is a rule value: a string, a finite number or a boolean.
type scalar struct {
	kind byte // 's', 'n', 'b'
	s    string
	n    float64
	b    bool
}

var requestFields = map[string]func(*Request) string{
	"deviceId":    func(r *Request) string { return r.DeviceID },
	"ipAddress":   func(r *Request) string { return r.IPAddress },
	"userAgent":   func(r *Request) string { return r.UserAgent },
	"email":       func(r *Request) string { return r.Email },
	"phoneNumber": func(r *Request) string { return r.PhoneNumber },
	"username":    func(r *Request) string { return r.Username },
	"scope":       func(r *Request) string { return r.Scope },
	"locale":      func(r *Request) string { return r.Locale },
}

func ruleState(s string) (string, bool) {
	switch s {
	case StateAllow, StateBlock, StateChallengeRequired, StateReviewRequired:
		return s, true
	case "REVIEW":
		return StateReviewRequired, true
	}
	return "", false
}

func compileRules(r *Rules) (*ruleSet, error) { return compileRulesWithDefault(r, StateAllow) }

// compileRulesWithDefault compiles r with fallback as the state of an action
// that no rule, action default or Rules.DefaultState decides.
func compileRulesWithDefault(r *Rules, fallback string) (*ruleSet, error) {
	rs := &ruleSet{defaultState: fallback, actions: map[string]*actionSet{}}
	if r == nil {
		return rs, nil
	}
	if r.DefaultState != "" {
		st, ok := ruleState(r.DefaultState)
		if !ok {
			return nil, fmt.Errorf("emulator: rules: defaultState: unknown state %q", r.DefaultState)
		}
		rs.defaultState = st
	}
	codes := make([]string, 0, len(r.Actions))
	for code := range r.Actions {
		codes = append(codes, code)
	}
	sort.Strings(codes) // deterministic error messages
	for _, code := range codes {
		ar := r.Actions[code]
		if !actionCodeRE.MatchString(code) {
			return nil, fmt.Errorf("emulator: rules: actions.%s: invalid action code", code)
		}
		as := &actionSet{def: rs.defaultState, enrol: ar.Enrol}
		if ar.Default != "" {
			st, ok := ruleState(ar.Default)
			if !ok {
				return nil, fmt.Errorf("emulator: rules: actions.%s.default: unknown state %q", code, ar.Default)
			}
			as.def = st
		}
		if ar.Methods != nil {
			if len(ar.Methods) == 0 {
				return nil, fmt.Errorf("emulator: rules: actions.%s.methods: empty (leave it out to accept any method)", code)
			}
			for _, m := range ar.Methods {
				switch {
				case !pageMethod(m):
					return nil, fmt.Errorf("emulator: rules: actions.%s.methods: unknown method %q (want one of %s)",
						code, m, strings.Join(pageMethods, ", "))
				case contains(as.methods, m):
					return nil, fmt.Errorf("emulator: rules: actions.%s.methods: %s twice", code, m)
				}
				as.methods = append(as.methods, m)
			}
		}
		ids := map[string]bool{}
		for i, rule := range ar.Rules {
			where := fmt.Sprintf("actions.%s.rules[%d]", code, i)
			if rule.ID != "" {
				where += fmt.Sprintf(" (%s)", rule.ID)
			}
			cr, err := compileRule(rule)
			if err == nil && ids[rule.ID] {
				err = errors.New("duplicate id")
			}
			if err != nil {
				return nil, fmt.Errorf("emulator: rules: %s: %w", where, err)
			}
			ids[rule.ID] = true
			as.rules = append(as.rules, cr)
		}
		rs.actions[code] = as
	}
	return rs, nil
}

func compileRule(rule Rule) (compiledRule, error) {
	cr := compiledRule{id: rule.ID, enrol: rule.Enrol}
	if rule.ID == "" {
		return cr, errors.New("missing id")
	}
	st, ok := ruleState(rule.State)
	if !ok {
		return cr, fmt.Errorf("unknown state %q", rule.State)
	}
	cr.state = st
	for j, c := range rule.When {
		cc, err := compileCond(c)
		if err != nil {
			return cr, fmt.Errorf("when[%d]: %w", j, err)
		}
		cr.conds = append(cr.conds, cc)
	}
	return cr, nil
}

func compileCond(c Condition) (compiledCond, error) {
	cc := compiledCond{field: c.Field, op: c.Op}
	if rest, ok := strings.CutPrefix(c.Field, "custom."); ok {
		cc.path = strings.Split(rest, ".")
		for _, p := range cc.path {
			if p == "" {
				return cc, fmt.Errorf("field %q: empty key", c.Field)
			}
		}
	} else if _, ok := requestFields[c.Field]; !ok {
		return cc, fmt.Errorf("unknown field %q", c.Field)
	}
	var err error
	switch c.Op {
	case "eq", "ne", "contains":
		cc.want, err = toScalar(c.Value)
	case "gt", "gte", "lt", "lte":
		n, ok := number(c.Value)
		if !ok {
			return cc, fmt.Errorf("field %s op %s: needs a number, got %v", c.Field, c.Op, c.Value)
		}
		cc.want = scalar{kind: 'n', n: n}
	case "in":
		cc.list, cc.prefixes, err = compileList(c.Field, c.Value)
	case "exists":
		cc.want = scalar{kind: 'b', b: true}
		if c.Value != nil {
			b, ok := c.Value.(bool)
			if !ok {
				return cc, fmt.Errorf("op exists needs true or false, got %v", c.Value)
			}
			cc.want.b = b
		}
	case "unknown":
		if c.Field != "deviceId" && c.Field != "ipAddress" {
			return cc, fmt.Errorf("op unknown applies to deviceId or ipAddress, not %q", c.Field)
		}
		if c.Value != nil {
			return cc, errors.New("op unknown takes no value")
		}
	default:
		return cc, fmt.Errorf("unknown op %q", c.Op)
	}
	if err != nil {
		return cc, fmt.Errorf("field %s op %s: %w", c.Field, c.Op, err)
	}
	return cc, nil
}

func compileList(field string, v any) ([]scalar, []netip.Prefix, error) {
	rv := reflect.ValueOf(v)
	if v == nil || (rv.Kind() != reflect.Slice && rv.Kind() != reflect.Array) {
		return nil, nil, fmt.Errorf("needs a list, got %v", v)
	}
	var list []scalar
	var prefixes []netip.Prefix
	for i := 0; i < rv.Len(); i++ {
		s, err := toScalar(rv.Index(i).Interface())
		if err != nil {
			return nil, nil, err
		}
		if field == "ipAddress" {
			p, err := parsePrefix(s.s)
			if s.kind != 's' || err != nil {
				return nil, nil, fmt.Errorf("%v is not an IP address or CIDR", rv.Index(i).Interface())
			}
			prefixes = append(prefixes, p)
		}
		list = append(list, s)
	}
	return list, prefixes, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func toScalar(v any) (scalar, error) {
	switch v := v.(type) {
	case string:
		return scalar{kind: 's', s: v}, nil
	case bool:
		return scalar{kind: 'b', b: v}, nil
	}
	if n, ok := number(v); ok {
		return scalar{kind: 'n', n: n}, nil
	}
	return scalar{}, fmt.Errorf("needs a string, number or boolean, got %v", v)
}

// number converts Go numbers and numeric strings to a finite float64.
func number(v any) (float64, bool) {
	var n float64
	switch v := v.(type) {
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil {
			return 0, false
		}
		n = f
	case nil, bool:
		return 0, false
	default:
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			n = float64(rv.Int())
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			n = float64(rv.Uint())
		case reflect.Float32, reflect.Float64:
			n = rv.Float()
		default:
			return 0, false
		}
	}
	if math.IsNaN(n) || math.IsInf(n, 0) {
		return 0, false
	}
	return n, true
}

// evaluate returns the state for a track of action with req, the ids of the
// rule that decided it, and whether unenrolled users may enrol. seen reports
// whether the user has used this deviceId or ipAddress before.
func (rs *ruleSet) evaluate(action string, req *Request, seen func(field, value string) bool) (state string, ruleIDs []string, enrol bool) {
	as, ok := rs.actions[action]
	if !ok {
		return rs.defaultState, []string{}, false
	}
	for _, r := range as.rules {
		if r.matches(req, seen) {
			return r.state, []string{r.id}, r.enrol
		}
	}
	return as.def, []string{}, as.enrol
}

// methods returns the methods action accepts, nil for any.
func (rs *ruleSet) methods(action string) []string {
	if as, ok := rs.actions[action]; ok {
		return as.methods
	}
	return nil
}

func (r *compiledRule) matches(req *Request, seen func(field, value string) bool) bool {
	for i := range r.conds {
		if !r.conds[i].matches(req, seen) {
			return false
		}
	}
	return true
}

func (c *compiledCond) matches(req *Request, seen func(field, value string) bool) bool {
	v, present := c.lookup(req)
	switch c.op {
	case "exists":
		return present == c.want.b
	case "unknown":
		s, _ := v.(string)
		return s == "" || !seen(c.field, s)
	}
	if !present {
		return false
	}
	switch c.op {
	case "eq":
		return equal(v, c.want)
	case "ne":
		return !equal(v, c.want)
	case "gt", "gte", "lt", "lte":
		n, ok := number(v)
		if !ok {
			return false
		}
		switch c.op {
		case "gt":
			return n > c.want.n
		case "gte":
			return n >= c.want.n
		case "lt":
			return n < c.want.n
		default:
			return n <= c.want.n
		}
	case "in":
		if c.prefixes != nil {
			s, _ := v.(string)
			a, err := netip.ParseAddr(s)
			if err != nil {
				return false
			}
			a = a.Unmap()
			for _, p := range c.prefixes {
				if p.Contains(a) {
					return true
				}
			}
			return false
		}
		for _, w := range c.list {
			if equal(v, w) {
				return true
			}
		}
		return false
	case "contains":
		switch v := v.(type) {
		case string:
			return c.want.kind == 's' && strings.Contains(v, c.want.s)
		case []any:
			for _, x := range v {
				if equal(x, c.want) {
					return true
				}
			}
		}
		return false
	}
	return false
}

func (c *compiledCond) lookup(req *Request) (any, bool) {
	if c.path == nil {
		s := requestFields[c.field](req)
		return s, s != ""
	}
	var cur any = req.Custom
	for _, k := range c.path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[k]; !ok {
			return nil, false
		}
	}
	return cur, cur != nil
}

// equal compares a request value with a rule value: numbers numerically
// (numeric strings included), strings and booleans exactly.
func equal(v any, w scalar) bool {
	switch w.kind {
	case 'n':
		n, ok := number(v)
		return ok && n == w.n
	case 's':
		s, ok := v.(string)
		return ok && s == w.s
	case 'b':
		b, ok := v.(bool)
		return ok && b == w.b
	}
	return false
}
