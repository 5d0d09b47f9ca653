package stepup

import (
	"fmt"
	"hash/maphash"
	"iter"
	"math/bits"
	"net/http"
	"strings"
)

// table is the compiled policy table, built once in New and never
// modified. It is an open-addressing hash table keyed by route: one slot
// per route some policy names, holding the set of methods with a policy
// on the route and where its rules are. The rules of a route sit side by
// side in rules, in the order of their methods' bits, so that the method,
// then GET for HEAD, then "*" resolve inside the one slot a probe finds:
// one probe per lookup, whatever the method, and no allocation.
//
// A probe reads the slots from the route's hash on, 32 bytes each, two to
// a cache line; the stored half of the hash rejects almost every other
// route without reading it, and the route itself (in one arena for all
// routes) is compared in full before a slot is taken: a hash never
// decides alone. The table is at most half full, so a probe for a route
// it does not have ends at an empty slot after a step or two.
type table struct {
	slots    []slot // a power of two in length, between a quarter and half full
	mask     uint64 // len(slots) - 1
	rules    []rule // grouped by route (see slot.first)
	seed     maphash.Seed
	hashMask uint64 // every bit set; tests clear some to force collisions
}

// slot is one route of the table, or an empty slot (no methods).
type slot struct {
	hash    uint32 // the high half of the route's hash
	methods uint16 // the methods of the route's policies (methodBit)
	route   string // a slice of the table's arena
	first   int    // the route's first rule in table.rules
}

// anyMethod is the bit of a "*" policy. Only one per route: New refuses a
// "*" policy beside a per-method one.
const anyMethod uint16 = 1 << 9

// methodBit numbers the methods a policy can name, and "*": a route's
// policies are a set of these bits. Any other method has none.
func methodBit(m string) uint16 {
	switch m {
	case http.MethodGet:
		return 1 << 0
	case http.MethodHead:
		return 1 << 1
	case http.MethodPost:
		return 1 << 2
	case http.MethodPut:
		return 1 << 3
	case http.MethodPatch:
		return 1 << 4
	case http.MethodDelete:
		return 1 << 5
	case http.MethodOptions:
		return 1 << 6
	case http.MethodConnect:
		return 1 << 7
	case http.MethodTrace:
		return 1 << 8
	case "*":
		return anyMethod
	}
	return 0
}

func compileTable(ps []Policy) (table, error) {
	type group struct {
		methods uint16
		first   int
	}
	at := make(map[string]int, len(ps)) // route → its group
	groups := make([]group, 0, len(ps)) // in the order routes first appear
	compiled := make([]*rule, len(ps))
	for i, p := range ps {
		r, err := p.compile()
		if err != nil {
			return table{}, fmt.Errorf("stepup: policy %d (%s %s): %w", i, p.Method, p.Route, err)
		}
		g, seen := at[p.Route]
		if !seen {
			g = len(groups)
			at[p.Route] = g
			groups = append(groups, group{})
		}
		bit := methodBit(p.Method)
		if groups[g].methods&bit != 0 {
			return table{}, fmt.Errorf("stepup: policy %d (%s %s): duplicate of an earlier policy", i, p.Method, p.Route)
		}
		groups[g].methods |= bit
		compiled[i] = r
	}
	// A "*" policy and a per-method policy on one route would disagree on
	// which action applies; refuse the ambiguity.
	for _, p := range ps {
		if p.Method != "*" && groups[at[p.Route]].methods&anyMethod != 0 {
			return table{}, fmt.Errorf("stepup: policies for %s %s and * %s overlap", p.Method, p.Route, p.Route)
		}
	}
	n := 0
	for g := range groups {
		groups[g].first = n
		n += bits.OnesCount16(groups[g].methods)
	}
	rules := make([]rule, len(ps))
	for i, p := range ps {
		g := groups[at[p.Route]]
		rules[g.first+bits.OnesCount16(g.methods&(methodBit(p.Method)-1))] = *compiled[i]
	}
	return newTable(rules, ^uint64(0)), nil
}

// newTable indexes rules, which are grouped by route and in the order of
// their methods' bits within a route, by a hash of the route ANDed with
// hashMask.
func newTable(rules []rule, hashMask uint64) table {
	routes := make([]slot, 0, len(rules))
	var arena strings.Builder
	n := 0
	for i := range rules {
		n += len(rules[i].Route) // at most: a route with two methods is written once
	}
	arena.Grow(n)
	for i := range rules {
		if i == 0 || rules[i].Route != rules[i-1].Route {
			routes = append(routes, slot{first: i})
			arena.WriteString(rules[i].Route)
		}
		routes[len(routes)-1].methods |= methodBit(rules[i].Method)
	}
	size := 1
	for size < 2*len(routes) {
		size <<= 1
	}
	t := table{slots: make([]slot, size), mask: uint64(size - 1), rules: rules, seed: maphash.MakeSeed(), hashMask: hashMask}
	all, off := arena.String(), 0
	for _, s := range routes {
		end := off + len(rules[s.first].Route)
		s.route, off = all[off:end], end
		h := maphash.String(t.seed, s.route) & hashMask
		s.hash = uint32(h >> 32)
		i := h & t.mask
		for t.slots[i].methods != 0 {
			i = (i + 1) & t.mask
		}
		t.slots[i] = s
	}
	return t
}

// lookup finds the rule for the method the router dispatched and the
// pattern it matched: the method's own policy, then for HEAD the GET
// policy, then the route's "*" policy.
func (t *table) lookup(method, route string) *rule {
	h := maphash.String(t.seed, route) & t.hashMask
	for i := h & t.mask; ; i = (i + 1) & t.mask {
		s := &t.slots[i]
		if s.methods == 0 {
			return nil
		}
		if s.hash != uint32(h>>32) || s.route != route {
			continue
		}
		bit := methodBit(method) & s.methods
		if bit == 0 && method == http.MethodHead {
			bit = methodBit(http.MethodGet) & s.methods
		}
		if bit == 0 {
			bit = anyMethod & s.methods
		}
		if bit == 0 {
			return nil
		}
		return &t.rules[s.first+bits.OnesCount16(s.methods&(bit-1))]
	}
}

// empty reports whether the table has no policy.
func (t *table) empty() bool { return len(t.rules) == 0 }

// keys yields the method and route of every policy, grouped by route.
func (t *table) keys() iter.Seq[routeKey] {
	return func(yield func(routeKey) bool) {
		for i := range t.rules {
			if !yield(routeKey{t.rules[i].Method, t.rules[i].Route}) {
				return
			}
		}
	}
}

// routes yields every route of the table with a table of its own
// policies.
func (t *table) routes() iter.Seq2[string, *table] {
	return func(yield func(string, *table) bool) {
		for _, s := range t.slots {
			if s.methods == 0 {
				continue
			}
			own := newTable(t.rules[s.first:s.first+bits.OnesCount16(s.methods)], ^uint64(0))
			if !yield(s.route, &own) {
				return
			}
		}
	}
}
