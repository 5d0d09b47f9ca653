package stepup

import (
	"math"
	"net/http"
	"strings"
)

// How much memory a record takes in a MemoryStore, and how much a
// challenge reserves there for the records that follow it.

// What a record costs in a MemoryStore, measured on amd64 with Go 1.26
// (HeapAlloc after GC; store_bench_test.go's BenchmarkMemoryStoreHeap
// reports the measured and the counted bytes side by side): every
// allocation rounded up to its size class (the strings are one, the body,
// body hash, judged digest, shown hashes and sealed bytes another), and
const (
	recordOverhead = 416 + 56 // the store's entry holding the Record, its map slot and heap slot (amortized)
	headerOverhead = 48       // an http.Header's map header; its slots are counted by headerSlots
	valueOverhead  = 16       // per header value: its string header, in one slice for all values
	shownOverhead  = 24       // per shown token hash: its slice header
)

// size is what the record holds in memory once a store owns it (see
// own), as counted against a store's byte limit.
func (r *Record) size() int {
	strs, keys, values := r.stringBytes()
	return recordSize(strs, r.byteLen(), r.Header != nil, keys, values) + bytesOf(shownOverhead*len(r.Shown))
}

// recordSize is size for a record with strs bytes of strings, bytes bytes
// of body, body hash and shown hashes, and a header of keys keys and values
// values when header is set.
func recordSize(strs, bytes int, header bool, keys, values int) int {
	n := recordOverhead + bytesOf(strs) + bytesOf(bytes)
	if header {
		n += headerSize(keys, values)
	}
	return n
}

// stringBytes is the length of every string of r, header keys and values
// included, and how many header keys and values it has.
func (r *Record) stringBytes() (n, keys, values int) {
	n = len(r.ID) + len(r.UserID) + len(r.Action) + len(r.Method) + len(r.Path) + len(r.Query) + len(r.Park) +
		len(r.VerificationMethod) + len(r.Trace) + len(r.Session)
	for k, vs := range r.Header {
		n += len(k)
		values += len(vs)
		for _, v := range vs {
			n += len(v)
		}
	}
	return n, len(r.Header), values
}

// own returns a deep copy of r whose strings are copied too, all into one
// allocation, so that a store holds exactly what size counts and nothing
// of the caller's memory (a query string keeps the whole request line it
// was cut from alive). The copy is returned by value: MemoryStore keeps it
// in its entry, one allocation with it.
func (r *Record) own() Record {
	c := *r
	n, _, values := r.stringBytes()
	var b strings.Builder
	b.Grow(n)
	for _, s := range []string{r.ID, r.UserID, r.Action, r.Method, r.Path, r.Query, r.Park, r.VerificationMethod, r.Trace, r.Session} {
		b.WriteString(s)
	}

	var small [16]string
	keys := small[:0]
	for k, vs := range r.Header {
		keys = append(keys, k)
		b.WriteString(k)
		for _, v := range vs {
			b.WriteString(v)
		}
	}
	arena := b.String()
	take := func(s string) string {
		out := arena[:len(s)]
		arena = arena[len(s):]
		return out
	}
	c.ID, c.UserID, c.Action, c.Method, c.Path, c.Query, c.Park =
		take(r.ID), take(r.UserID), take(r.Action), take(r.Method), take(r.Path), take(r.Query), take(r.Park)
	c.VerificationMethod, c.Trace, c.Session = take(r.VerificationMethod), take(r.Trace), take(r.Session)
	if r.Header != nil {
		c.Header = make(http.Header, len(keys))
		all := make([]string, values)
		for _, k := range keys {
			vs := r.Header[k]
			kept := all[:len(vs):len(vs)]
			all = all[len(vs):]
			nk := take(k)
			for i, v := range vs {
				kept[i] = take(v)
			}
			if vs == nil {
				kept = nil
			}
			c.Header[nk] = kept
		}
	}
	c.Body, c.BodyHash, c.Judged, c.Shown, c.Sealed = r.copyBytes()
	return c
}

// headerSize is what http.Header.Clone allocates for keys keys and values
// values, strings aside: the map, and one slice for all values.
func headerSize(keys, values int) int {
	return headerOverhead + headerSlots(keys) + bytesOf(valueOverhead*values)
}

// headerSlots is what the groups of a map[string][]string sized for keys
// keys take: 8 slots of 40 bytes and 8 control bytes per group, at most
// 7/8 full, in tables of at most 1,024 slots (Go's Swiss tables).
func headerSlots(keys int) int {
	switch {
	case keys == 0:
		return 0
	case keys <= 8:
		return bytesOf(8 * 41)
	}
	slots := 16
	for slots*7/8 < keys {
		slots *= 2
	}
	if slots <= 1024 {
		return 40 + bytesOf(slots*41) // with its table and directory
	}
	return slots / 1024 * (48 + bytesOf(1024*41))
}

func str(s string) int { return bytesOf(len(s)) }

// bytesOf is what an allocation of n bytes takes in Go's heap: the next
// size class up to 32 KiB, whole 8 KiB pages beyond.
func bytesOf(n int) int {
	if n <= 0 {
		return 0
	}
	if n > sizeClasses[len(sizeClasses)-1] {
		return (n + 8191) &^ 8191
	}
	lo, hi := 0, len(sizeClasses)-1
	for lo < hi {
		m := (lo + hi) / 2
		if sizeClasses[m] < n {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return sizeClasses[lo]
}

// sizeClasses are Go's small object sizes (internal/runtime/gc).
var sizeClasses = [...]int{8, 16, 24, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240, 256, 288, 320,
	352, 384, 416, 448, 480, 512, 576, 640, 704, 768, 896, 1024, 1152, 1280, 1408, 1536, 1792, 2048, 2304, 2688, 3072,
	3200, 3456, 4096, 4864, 5376, 6144, 6528, 6784, 6912, 8192, 9472, 9728, 10240, 10880, 12288, 13568, 14336, 16384,
	18432, 19072, 20480, 21760, 24576, 27264, 28672, 32768}

// reserve is what a challenge keeps back in a bounded store for the records
// the guard writes after it is passed: bytes by successor kind (indexed by
// successorSlot), 0 for a record it will not need. Each one also holds an
// entry.
type reserve [4]int32

// successorSlot is where kind's reservation is in a reserve, or -1 for a
// kind that follows no challenge.
func successorSlot(k Kind) int {
	if k == KindDecision {
		// A review park spends no token: its decision takes that place.
		return int(KindUsed - KindPass)
	}
	if k >= KindPass && k <= KindOutcome {
		return int(k - KindPass)
	}
	return -1
}

func (rs reserve) entries() int64 {
	n := int64(0)
	for _, b := range rs {
		if b > 0 {
			n++
		}
	}
	return n
}

func (rs reserve) bytes() int64 {
	n := int64(0)
	for _, b := range rs {
		n += int64(b)
	}
	return n
}

// successors is what the guard writes after the challenge r is passed
// (see spend, grant, resumeGet and keepOutcome), each sized as size counts
// it: the spent token (KindUsed); the Remember grant when r has one; for
// a browser park, the kept answer (KindOutcome: a redirect to r's own
// location for a GET, otherwise up to outcomeBody bytes of body and 256
// bytes of Content-Type and Location) and, for a GET, the single-use pass
// (with r's judged digest).
func (r *Record) successors(outcomeBody int) reserve {
	var rs reserve
	set := func(k Kind, n int) { rs[successorSlot(k)] = int32(min(n, math.MaxInt32)) }
	const usedID, newID, outcomeID = usedIDLen, 22, 24 // the lengths of usedID, newID and outcomeID's ids
	park := len(r.ID)                                  // each successor names its challenge
	set(KindUsed, recordSize(usedID+park, 0, false, 0, 0))
	if r.Remember > 0 {
		// a grant's slot id, and the method it was earned with
		set(KindGrant, recordSize(grantIDLen+len(r.UserID)+len(r.Action)+park+maxMethodLen, 0, false, 0, 0))
	}
	if r.Kind != KindPark && r.Kind != KindReview {
		return rs
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		set(KindPass, recordSize(newID+len(r.UserID)+len(r.Action)+len(http.MethodGet)+len(r.Path)+len(r.Query)+park,
			len(r.Judged), false, 0, 0)) // the pass carries the park's judged digest
		loc := len(r.Path) // location(r)
		if r.Query != "" {
			loc += 1 + len(r.Query)
		}
		set(KindOutcome, recordSize(outcomeID+park+len("Location")+max(loc, 1), 0, true, 1, 1))
		return rs
	}
	body := min(max(outcomeBody, 0), math.MaxInt32)
	set(KindOutcome, recordSize(outcomeID+park+len("Content-Type")+len("Location")+256, body, true, 2, 2))
	return rs
}
