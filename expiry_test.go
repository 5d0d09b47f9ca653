package stepup

import (
	"math/rand/v2"
	"sort"
	"testing"
)

// The expiry heap stays a heap whatever is pushed and removed, and every
// entry knows its index: a removal from the middle that leaves a smaller
// entry under a larger parent must move it up, or an expired record would
// hide below one that has not expired yet and keep holding the store's
// room.
func TestExpiryHeapKeepsItsOrderAndIndexes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var h expiryHeap
	live := map[*memoryEntry]bool{}
	check := func(step int) {
		t.Helper()
		for i, e := range h {
			if int(e.idx) != i {
				t.Fatalf("step %d: entry at %d says it is at %d", step, i, e.idx)
			}
			if i > 0 && h[(i-1)/2].exp > e.exp {
				t.Fatalf("step %d: entry %d (exp %d) is under a later parent (exp %d)", step, i, e.exp, h[(i-1)/2].exp)
			}
		}
		if len(h) != len(live) {
			t.Fatalf("step %d: heap holds %d, want %d", step, len(h), len(live))
		}
	}
	for step := 0; step < 5000; step++ {
		if len(h) == 0 || rng.IntN(3) > 0 {
			e := &memoryEntry{exp: int64(rng.IntN(50))} // ties on purpose
			h.push(e)
			live[e] = true
		} else {
			e := h[rng.IntN(len(h))]
			h.remove(int(e.idx))
			delete(live, e)
		}
		check(step)
	}
	// Popping the head in turn yields the expiry times in order.
	var got, want []int64
	for e := range live {
		want = append(want, e.exp)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for len(h) > 0 {
		got = append(got, h[0].exp)
		h.remove(0)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("popped %v, want %v", got, want)
		}
	}
}

// The case a removal must fix upwards, built by hand: removing an entry
// from the middle moves the last entry (exp 4) under a parent that
// expires later (exp 10).
func TestExpiryHeapRemovalMovesTheLastEntryUp(t *testing.T) {
	var h expiryHeap
	for _, exp := range []int64{1, 10, 2, 11, 12, 3, 4} {
		h.push(&memoryEntry{exp: exp})
	}
	h.remove(3) // exp 11; the last entry, exp 4, takes its place under exp 10
	if h[1].exp != 4 || h[3].exp != 10 {
		t.Fatalf("heap after removal: %v", exps(h))
	}
}

func exps(h expiryHeap) []int64 {
	out := make([]int64, len(h))
	for i, e := range h {
		out[i] = e.exp
	}
	return out
}
