package stepup

// The policy table against a model of what it replaced: a plain map from
// (method, route) to the policy, looked up with the method, then GET for
// HEAD, then "*". A route the table misses is a route served without its
// step-up, so every case below compares every answer, on tables whose
// hashes are also forced to collide (hashMask): the probe, not the hash,
// must decide.

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modelTable is the old table, written plainly: the index of the policy
// for each (method, route).
type modelTable map[routeKey]int

func newModelTable(ps []Policy) (modelTable, error) {
	m := modelTable{}
	for i, p := range ps {
		if _, err := p.compile(); err != nil {
			return nil, fmt.Errorf("stepup: policy %d (%s %s): %w", i, p.Method, p.Route, err)
		}
		k := routeKey{p.Method, p.Route}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("stepup: policy %d (%s %s): duplicate of an earlier policy", i, p.Method, p.Route)
		}
		m[k] = i
	}
	for _, p := range ps { // the first per-method policy of a route with a "*" one
		if _, both := m[routeKey{"*", p.Route}]; both && p.Method != "*" {
			return nil, fmt.Errorf("stepup: policies for %s %s and * %s overlap", p.Method, p.Route, p.Route)
		}
	}
	return m, nil
}

func (m modelTable) lookup(method, route string) (int, bool) {
	if i, ok := m[routeKey{method, route}]; ok {
		return i, true
	}
	if method == http.MethodHead {
		if i, ok := m[routeKey{http.MethodGet, route}]; ok {
			return i, true
		}
	}
	i, ok := m[routeKey{"*", route}]
	return i, ok
}

// policyMethods are the methods a policy can name.
var policyMethods = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace, "*"}

// queryMethods are what a router may hand over: the policy methods and
// some no policy can name.
var queryMethods = append(slices.Clone(policyMethods), "", "get", "Head", "FOO", "GET ", "**")

// hashMasks force collisions: none, every route in one chain with one
// stored hash, one start slot with distinct stored hashes, distinct
// start slots with one stored hash, two chains.
var hashMasks = []uint64{^uint64(0), 0, 0xffffffff_00000000, 0x00000000_ffffffff, 1 << 63}

// variants are routes a router may hand over that differ from route by
// little: one byte changed, added or removed, the case of a letter.
func variants(route string) []string {
	out := []string{route + "x", route + "/", strings.ToUpper(route), strings.Clone(route)}
	for _, i := range []int{0, len(route) / 2, len(route) - 1} {
		if i >= 0 && i < len(route) {
			b := []byte(route)
			b[i] ^= 1
			out = append(out, string(b), route[:i]+route[i+1:])
		}
	}
	return out
}

// checkTable compiles ps, as New does and as the model does, and compares
// the errors, then every query's answer with every hash mask.
func checkTable(t *testing.T, ps []Policy, queries []string) {
	t.Helper()
	model, merr := newModelTable(ps)
	tbl, err := compileTable(ps)
	if merr != nil {
		require.EqualError(t, err, merr.Error())
		return
	}
	require.NoError(t, err)
	assert.Len(t, tbl.rules, len(ps))
	checkKeys(t, &tbl, model)
	for _, mask := range hashMasks {
		rebuilt := newTable(tbl.rules, mask)
		for _, route := range queries {
			for _, method := range queryMethods {
				if d := lookupDiff(&rebuilt, ps, model, method, route); d != "" {
					t.Fatalf("hash mask %#x: %s", mask, d)
				}
			}
		}
	}
	// Each route's own table (NewServeMux) answers for its route as the
	// whole table does, and has no other route.
	seen := map[string]bool{}
	for route, own := range tbl.routes() {
		require.False(t, seen[route], "route %q yielded twice", route)
		seen[route] = true
		for _, q := range append(variants(route), route) {
			for _, method := range queryMethods {
				want := tbl.lookup(method, q)
				if q != route {
					want = nil
				}
				if got := own.lookup(method, q); got != want {
					t.Fatalf("%q %q in the table of %q: got %v, want %v", method, q, route, got, want)
				}
			}
		}
	}
	for _, p := range ps {
		assert.True(t, seen[p.Route], "route %q not yielded", p.Route)
	}
}

func checkKeys(t *testing.T, tbl *table, model modelTable) {
	t.Helper()
	var keys []routeKey
	for k := range tbl.keys() {
		keys = append(keys, k)
	}
	want := make([]routeKey, 0, len(model))
	for k := range model {
		want = append(want, k)
	}
	assert.ElementsMatch(t, want, keys)
}

// lookupDiff compares one answer of tbl with the model's and describes
// the difference, or returns "".
func lookupDiff(tbl *table, ps []Policy, model modelTable, method, route string) string {
	got := tbl.lookup(method, route)
	i, ok := model.lookup(method, route)
	switch {
	case !ok && got == nil:
		return ""
	case !ok:
		return fmt.Sprintf("%q %q: got the policy for %s %s, want none", method, route, got.Method, got.Route)
	case got == nil:
		return fmt.Sprintf("%q %q: got none, want policy %d (%s %s)", method, route, i, ps[i].Method, ps[i].Route)
	case got.Action != ps[i].Action || got.Method != ps[i].Method || got.Route != ps[i].Route:
		return fmt.Sprintf("%q %q: got %s %s (%s), want policy %d (%s %s)", method, route, got.Method, got.Route, got.Action, i, ps[i].Method, ps[i].Route)
	}
	return ""
}

// tableRoutes are routes that tempt a lookup to confuse them: prefixes,
// one byte apart, a trailing slash, wildcards, escapes, long ones that
// differ at the start, the middle or the end.
func tableRoutes() []string {
	long := "/" + strings.Repeat("abcdefgh", 500)
	return []string{"/", "/a", "/b", "/ab", "/ba", "/a/", "/a/b", "/a/{id}", "/a/{id}/", "/a/{path...}", "/{x}",
		"/admin/", "/admin", "/Admin", "/caf\u00e9", "/a%2Fb", "/a/{$}", "/*", "/:id",
		long, long + "a", long[:len(long)-1] + "i", "/b" + long[2:], long[:2000] + "X" + long[2001:]}
}

// randomPolicies draws a table from routes: mostly one a guard accepts
// (per route either a "*" policy or a set of methods), sometimes one with
// duplicates or overlaps, in a shuffled order.
func randomPolicies(rng *rand.Rand, routes []string, n int) []Policy {
	var ps []Policy
	conflicts := rng.IntN(10) == 0
	for _, route := range routes[:min(n, len(routes))] {
		switch {
		case conflicts:
			for range 1 + rng.IntN(3) {
				ps = append(ps, Policy{Method: policyMethods[rng.IntN(len(policyMethods))], Route: route})
			}
		case rng.IntN(4) == 0:
			ps = append(ps, Policy{Method: "*", Route: route})
		default:
			for _, m := range policyMethods[:9] {
				if rng.IntN(3) == 0 {
					ps = append(ps, Policy{Method: m, Route: route})
				}
			}
		}
	}
	rng.Shuffle(len(ps), func(i, j int) { ps[i], ps[j] = ps[j], ps[i] })
	for i := range ps {
		ps[i].Action = fmt.Sprintf("a%d", i)
	}
	return ps
}

func TestTableAnswersAsTheMapItReplaced(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	routes := tableRoutes()
	queries := []string{"", "/c", "a", "//a", "/a//", "/a/b/c"}
	for _, r := range routes {
		queries = append(queries, r)
		queries = append(queries, variants(r)...)
	}
	for i := range 100 {
		rng.Shuffle(len(routes), func(i, j int) { routes[i], routes[j] = routes[j], routes[i] })
		ps := randomPolicies(rng, routes, rng.IntN(len(routes)+1))
		t.Run(fmt.Sprint(i), func(t *testing.T) { checkTable(t, ps, queries) })
	}
}

func TestTableResolvesEveryMethodOfARouteInItsSlot(t *testing.T) {
	tests := []struct {
		name   string
		given  []string // the methods with a policy on /r
		when   string
		expect string // the method of the policy found, "" for none
	}{
		{"the method's own policy", []string{"GET", "HEAD", "POST"}, "POST", "POST"},
		{"HEAD's own policy before GET's", []string{"GET", "HEAD"}, "HEAD", "HEAD"},
		{"HEAD falls back to GET", []string{"GET", "POST"}, "HEAD", "GET"},
		{"GET does not fall back to HEAD", []string{"HEAD"}, "GET", ""},
		{"HEAD falls back to *", []string{"*"}, "HEAD", "*"},
		{"any method falls back to *", []string{"*"}, "PATCH", "*"},
		{"an unknown method falls back to *", []string{"*"}, "FOO", "*"},
		{"an unknown method finds nothing else", []string{"GET", "POST"}, "FOO", ""},
		{"a method without a policy", []string{"GET", "HEAD", "PUT"}, "POST", ""},
		{"* asks for the * policy", []string{"*"}, "*", "*"},
		{"* is not a per-method policy", []string{"GET"}, "*", ""},
		{"the last method", []string{"GET", "TRACE"}, "TRACE", "TRACE"},
		{"the first method", []string{"GET", "TRACE"}, "GET", "GET"},
	}
	every := policyMethods[:9]
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ps []Policy
			for _, m := range tc.given {
				ps = append(ps, Policy{Method: m, Route: "/r", Action: "on-" + strings.Trim(m, "*")})
			}
			for _, m := range every { // a neighbour with every method
				ps = append(ps, Policy{Method: m, Route: "/s", Action: "s" + m})
			}
			tbl, err := compileTable(ps)
			require.NoError(t, err)
			for _, mask := range hashMasks {
				rebuilt := newTable(tbl.rules, mask)
				r := rebuilt.lookup(tc.when, "/r")
				if tc.expect == "" {
					assert.Nil(t, r, "hash mask %#x", mask)
					continue
				}
				require.NotNil(t, r, "hash mask %#x", mask)
				assert.Equal(t, tc.expect, r.Method)
				assert.Equal(t, "on-"+strings.Trim(tc.expect, "*"), r.Action)
			}
		})
	}
}

func TestTableSlotsStayBetweenAQuarterAndHalfFull(t *testing.T) {
	for n := range 70 {
		ps := make([]Policy, 0, 2*n)
		for i := range n { // two methods a route: slots count routes
			ps = append(ps, Policy{Method: "GET", Route: fmt.Sprintf("/r%d", i), Action: "a"},
				Policy{Method: "POST", Route: fmt.Sprintf("/r%d", i), Action: "b"})
		}
		tbl, err := compileTable(ps)
		require.NoError(t, err)
		size := len(tbl.slots)
		require.Equal(t, 1, bits.OnesCount(uint(size)), "%d routes: %d slots is not a power of two", n, size)
		assert.Equal(t, uint64(size-1), tbl.mask)
		if n == 0 {
			assert.Equal(t, 1, size, "an empty table has one empty slot")
			continue
		}
		assert.GreaterOrEqual(t, size, 2*n, "%d routes in %d slots: over half full", n, size)
		assert.Less(t, size, 4*n, "%d routes in %d slots: a quarter full or less", n, size)
	}
}

// Stopping a range over keys or routes stops the iterator: the range
// function must not call the loop body again.
func TestTableIteratorsStopWhenAsked(t *testing.T) {
	tbl, err := compileTable([]Policy{{Method: "GET", Route: "/a", Action: "a"}, {Method: "POST", Route: "/b", Action: "b"},
		{Method: "GET", Route: "/b", Action: "c"}})
	require.NoError(t, err)
	n := 0
	for range tbl.keys() {
		n++
		break
	}
	for range tbl.routes() {
		n++
		break
	}
	assert.Equal(t, 2, n)
	assert.False(t, tbl.empty())
	empty, err := compileTable(nil)
	require.NoError(t, err)
	assert.True(t, empty.empty())
	assert.Nil(t, empty.lookup("GET", "/"))
	assert.Nil(t, empty.lookup("GET", ""))
}

// New names the first per-method policy, in the table's order, that a
// "*" policy on its route overlaps: the same error on every run.
func TestTableOverlapErrorIsDeterministic(t *testing.T) {
	ps := []Policy{{Method: "*", Route: "/b", Action: "b"}, {Method: "PUT", Route: "/a", Action: "a"},
		{Method: "POST", Route: "/b", Action: "c"}, {Method: "GET", Route: "/b", Action: "d"}, {Method: "*", Route: "/a", Action: "e"}}
	for range 20 {
		_, err := compileTable(ps)
		require.EqualError(t, err, "stepup: policies for PUT /a and * /a overlap")
	}
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 0, 1, 0, 2, 1, 9, 2}, "/a/{id}")
	f.Add([]byte{1, 0, 0, 0, 9, 0}, "/")
	f.Add([]byte{0, 3, 0, 4, 0, 5, 9, 6}, "/"+strings.Repeat("x", 300))
	f.Add([]byte{}, "")
	routes := tableRoutes()[:19] // the long ones make each run slow
	f.Fuzz(func(t *testing.T, ops []byte, extra string) {
		pool := slices.Clone(routes)
		queries := []string{extra, "/" + extra}
		for _, r := range []string{extra, "/" + extra, "/" + extra + "/"} {
			if checkRoute(r) == nil {
				pool = append(pool, r)
				queries = append(queries, variants(r)...)
			}
		}
		var ps []Policy
		for i := 0; i+1 < len(ops) && len(ps) < 64; i += 2 {
			ps = append(ps, Policy{Method: policyMethods[int(ops[i])%len(policyMethods)],
				Route: pool[int(ops[i+1])%len(pool)], Action: fmt.Sprintf("a%d", len(ps))})
		}
		for _, r := range pool {
			queries = append(queries, r, r+"x")
		}
		checkTable(t, ps, queries)
	})
}
