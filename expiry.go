package stepup

import (
	"math"
	"time"
)

// The expiry index of a MemoryStore shard.

// unixNano is t in Unix nanoseconds, clamped to what an int64 holds.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(minUnixNano):
		return math.MinInt64
	case t.After(maxUnixNano):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minUnixNano = time.Unix(0, math.MinInt64)
	maxUnixNano = time.Unix(0, math.MaxInt64)
)

// expiryHeap is a min-heap of entries on exp; each entry knows its index,
// so that any entry is removed in O(log n).
type expiryHeap []*memoryEntry

func (h *expiryHeap) push(e *memoryEntry) {
	e.idx = int32(len(*h))
	*h = append(*h, e)
	h.up(int(e.idx))
}

func (h *expiryHeap) remove(i int) {
	old := *h
	last := len(old) - 1
	if i != last {
		old.swap(i, last)
	}
	old[last] = nil
	*h = old[:last]
	if i != last {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = int32(i)
	h[j].idx = int32(j)
}

func (h expiryHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h[p].exp <= h[i].exp {
			return
		}
		h.swap(i, p)
		i = p
	}
}

// down moves the entry at i down to its place and reports whether it moved.
func (h expiryHeap) down(i int) bool {
	start := i
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		c := l
		if r := l + 1; r < len(h) && h[r].exp < h[l].exp {
			c = r
		}
		if h[i].exp <= h[c].exp {
			break
		}
		h.swap(i, c)
		i = c
	}
	return i > start
}
