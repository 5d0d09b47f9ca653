package stepup

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// Store keeps records server-side, shared by every instance of the
// application that serves the same users.
//
// The contract:
//   - Put inserts a new record. It returns ErrExists when a live record has
//     the same ID, consumed or not, and ErrStoreFull when a bounded store
//     cannot take it; it never overwrites. (The guard keeps a user's
//     Remember grants under a few ids it takes with Put and ends with
//     Consume: an id is free again only once its record expired.)
//   - A bounded store keeps a reserve: it refuses a new challenge (KindPark,
//     KindAPI) with ErrStoreFull before it is completely full, and lets the
//     records that follow a passed challenge (KindUsed, KindOutcome,
//     KindPass, KindGrant; each names its challenge in Park) use the
//     reserve. A full store then turns away new challenges (the guard
//     answers 503 with Retry-After) but never the callback or token retry
//     of a user who already passed one. MemoryStore makes that certain by
//     reserving, when it takes a challenge, the room of every record that
//     will name it in Park.
//   - Get returns a copy of the record, consumed or not. A missing record or
//     one whose Expires has passed is ErrNotFound.
//   - Consume atomically marks a pending record consumed and returns it. Of
//     any number of concurrent callers for one ID, across all instances,
//     exactly one succeeds; the others get ErrConsumed. Missing or expired
//     is ErrNotFound.
//   - Delete removes a record; deleting a missing record is not an error.
//
// Any other error means the store could not answer; the guard then fails
// closed. Implementations must not keep references to the caller's Record,
// and must give back every field as it was put, Created and Expires to the
// millisecond at least: the records the guard writes carry their content
// sealed in Record.Sealed, bound to ID, Kind, Created, Expires and Park,
// and one that comes back changed does not open (Config.RecordKeys).
type Store interface {
	Put(ctx context.Context, rec *Record) error
	Get(ctx context.Context, id string) (*Record, error)
	Consume(ctx context.Context, id string) (*Record, error)
	Delete(ctx context.Context, id string) error
}

// Spender is a Store that spends a passed challenge's token in one step.
// When Config.Store implements it, the guard spends with one Spend (one
// round trip on a shared store) instead of a Put and a Consume. The
// contract, beside Store's:
//   - Spend(ctx, used, park) puts used (a KindUsed record whose Park is
//     park) and consumes the record park, as one atomic step across all
//     instances: when a live record has used.ID it returns ErrExists and
//     consumes nothing; when park is missing or expired (ErrNotFound) or
//     consumed (ErrConsumed) it writes nothing; else it writes used as Put
//     would (never overwriting, in the room park reserved for it) and
//     consumes park, returning it as Consume does. Of any number of
//     concurrent Spends of one park exactly one succeeds.
//   - Any other error means the store could not answer: used and park are
//     then as they were, or used is written and park consumed. The guard
//     deletes used then, so that a park still pending can be completed.
//
// A wrapper that embeds a Spender to change what Put or Consume do must
// implement Spend too: the guard calls it instead of them, and an embedded
// Spend would go around the wrapper. For that reason MemoryStore, which
// has no round trips to save, implements neither Spender nor MultiGetter:
// a Store that embeds it stays a plain Store.
type Spender interface {
	Store
	Spend(ctx context.Context, used *Record, park string) (*Record, error)
}

// MultiGetter is a Store that reads several records at once. When
// Config.Store implements it, the guard reads a callback's park and its
// token's spent mark with one GetMany (one round trip on a shared store)
// instead of two Gets. GetMany(ctx, ids...) returns one record per id, as
// Get returns it, and nil where Get would return ErrNotFound; any error
// means the store could not answer. A wrapper that embeds a MultiGetter
// to change what Get does must implement GetMany too.
type MultiGetter interface {
	Store
	GetMany(ctx context.Context, ids ...string) ([]*Record, error)
}

// MemoryStore is a Store in the memory of one process, bounded in entries
// and bytes, that forgets records when they expire. It suits a single
// instance; several instances need a shared store such as stores/redis.
//
// Records are spread over shards by a seeded hash of their id, each shard
// with its own lock and an expiry index (a min-heap on Expires): Put, Get,
// Consume and Delete take O(log n) at any size and lock one shard (two for
// a record that follows a challenge), and an expired record is dropped
// when its shard is next written to, or by one pass over the heads of
// every shard's index when the store would otherwise be full. Nothing is
// ever evicted while it lives.
//
// The limits are global and exact: what the store holds and has reserved
// is counted in two atomic counters that a Put raises only while the sum
// stays within the limit, so concurrent Puts at the limit never overshoot
// it; one of them may be refused while another, refused for bytes, briefly
// holds an entry it then gives back.
type MemoryStore struct {
	shards         [memoryShards]memoryShard
	seed           maphash.Seed
	maxEntries     int64
	maxBytes       int64
	outcomeReserve int
	now            func() time.Time
	entries        atomic.Int64 // records held plus entries reserved for their successors
	bytes          atomic.Int64 // bytes counted for them (Record.size) plus bytes reserved
}

// memoryShards is how many locks the store's records are spread over.
const memoryShards = 64

type memoryShard struct {
	mu   sync.Mutex
	recs map[string]*memoryEntry
	heap expiryHeap
	_    [88]byte // one shard per 128 bytes: neighbours' locks do not share a cache line
}

// memoryEntry is a record as the store holds it. The record itself is
// never written after Put; whether it was consumed is kept here.
type memoryEntry struct {
	rec      Record // the store's own copy (see Record.own), in the entry's allocation
	exp      int64  // Expires in Unix nanoseconds, the index's key
	size     int64  // what rec counts against the byte limit
	reserved reserve
	idx      int32 // position in the shard's expiry heap
	consumed bool
}

var _ Store = (*MemoryStore)(nil)

// MemoryOption configures a MemoryStore.
type MemoryOption func(*MemoryStore)

// Default limits of a MemoryStore; see MemoryLimits.
const (
	DefaultMemoryEntries = 160_000
	DefaultMemoryBytes   = 256 << 20
)

// MemoryLimits bounds the store. Defaults DefaultMemoryEntries records and
// DefaultMemoryBytes bytes, counting what each record really holds in the
// heap (the record, its strings, header map and body, and the store's own
// index of it, to within 5% of what runtime.MemStats measures).
//
// When the store is full of live records, Put returns ErrStoreFull:
// nothing pending is ever evicted to make room. An eighth of each limit is
// a reserve that new challenges (KindPark, KindAPI) cannot use, and a new
// challenge also reserves, until it is completed or gone, the entries and
// bytes of the records the guard writes after it is passed (its spent
// token, its pass or kept answer, its Remember grant; see
// MemoryOutcomeReserve). A full store therefore refuses new challenges
// (the guard answers 503 with Retry-After) and never the callback or token
// retry of a user who passed one.
//
// Capacity with the defaults and the guard's default TTLs (ParkTTL 10
// minutes, a spent token kept 11): a browser flow, a POST with a 1 KiB
// body and 10 headers whose replay answers with a redirect, holds 3
// records, about 4.4 KiB together, for up to 11 minutes once passed, and
// one record with its reservation (3 entries, about 5.5 KiB) for 10
// minutes while pending. The challenges' share of the defaults (140,000
// entries, 224 MiB) thus takes about 42,000 such flows per ParkTTL, 70
// challenges a second sustained, passed or not (50 a second hold 94,000
// entries and 128 to 165 MiB). Larger bodies are bound by bytes: 16 KiB
// bodies allow about 11,000 flows per ParkTTL (18 a second), 64 KiB
// bodies about 3,300 (5.5 a second). A Remember grant adds about 450 bytes
// for as long as it lasts, a GET pass as much for a minute. The caps bound
// the challenges left open: MaxChallengesPerUser (20 per ParkTTL) in each
// of a user's counts (established browsers and other clients, for step-up
// and for sign-in: 80), so filling the store with open challenges takes
// over 500 accounts. Passed challenges give their slot back up to five
// times MaxChallengesPerUser per ParkTTL, and count beyond it: an account
// that passes its own second factor at machine speed holds at most 140
// flows per ParkTTL and kind, 100 of them passed: about 20 MB at the
// largest bodies and headers (SECURITY.md, "The challenge caps").
// These figures are for the records as a test writes them; through a
// guard they arrive sealed (Config.RecordKeys), without header maps, and
// take less: the same browser flow about 3.3 KiB once passed, 4.5 KiB with
// its reservation while pending.
func MemoryLimits(entries, bytes int) MemoryOption {
	return func(s *MemoryStore) {
		if entries > 0 {
			s.maxEntries = int64(entries)
		}
		if bytes > 0 {
			s.maxBytes = int64(bytes)
		}
	}
}

// MemoryOutcomeReserve sets how many bytes a parked browser request
// (KindPark, not a GET) reserves for the body of the answer its replay
// keeps for a refresh of the callback (and 256 bytes for its Content-Type
// and Location). Default 1 KiB: a redirect or a short page. A longer answer is kept too when the store has
// room beyond the reservation; when it has not, the request still runs
// once and its answer reaches the browser, and a refresh of the callback
// says the request was already carried out instead of showing it again.
// Set it to Config.MaxBodyBytes to reserve for every answer the guard
// keeps, at that many bytes per pending challenge.
func MemoryOutcomeReserve(bytes int) MemoryOption {
	return func(s *MemoryStore) {
		if bytes >= 0 {
			s.outcomeReserve = bytes
		}
	}
}

// MemoryClock sets the clock the store uses for expiry. Default time.Now.
func MemoryClock(now func() time.Time) MemoryOption {
	return func(s *MemoryStore) {
		if now != nil {
			s.now = now
		}
	}
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore(opts ...MemoryOption) *MemoryStore {
	s := &MemoryStore{
		seed:           maphash.MakeSeed(),
		maxEntries:     DefaultMemoryEntries,
		maxBytes:       DefaultMemoryBytes,
		outcomeReserve: 1 << 10,
		now:            time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	for i := range s.shards {
		s.shards[i].recs = make(map[string]*memoryEntry)
	}
	return s
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, rec *Record) error {
	return s.put(rec, nil)
}

// put is Put with the reservation of a challenge computed by successors
// (from the record as it was before it was sealed; see sealedStore), or
// by rec.successors when nil.
func (s *MemoryStore) put(rec *Record, successors func(outcomeBody int) reserve) error {
	if rec == nil || rec.ID == "" {
		return fmt.Errorf("stepup: memory store: record without id")
	}
	e := &memoryEntry{rec: rec.own(), exp: unixNano(rec.Expires)}
	e.rec.Consumed = false
	e.consumed = rec.Consumed
	e.size = int64(e.rec.size())
	if e.rec.challenge() {
		if successors == nil {
			successors = e.rec.successors
		}
		e.reserved = successors(s.outcomeReserve)
	}
	i, j := s.shardOf(e.rec.ID), -1 // j: the shard of the challenge whose reservation e may use
	if e.rec.Park != "" && successorSlot(e.rec.Kind) >= 0 {
		j = s.shardOf(e.rec.Park)
	}
	for attempt := 0; ; attempt++ {
		now := unixNano(s.now())
		s.lockPair(i, j)
		var ps *memoryShard
		if j >= 0 {
			ps = &s.shards[j]
		}
		err := s.insert(&s.shards[i], ps, e, now)
		s.unlockPair(i, j)
		if !errors.Is(err, ErrStoreFull) || attempt > 0 {
			return err
		}
		s.expireAll(now) // expired records never hold capacity: drop them all, then try once more
	}
}

// insert adds e to sh, with sh (and ps, when not nil) locked.
func (s *MemoryStore) insert(sh, ps *memoryShard, e *memoryEntry, now int64) error {
	s.expire(sh, now)
	if ps != nil && ps != sh {
		s.expire(ps, now)
	}
	if old, ok := sh.recs[e.rec.ID]; ok {
		if now < old.exp {
			return ErrExists
		}
		s.remove(sh, old)
	}
	if e.exp <= now {
		return nil // expired already: nothing to keep
	}
	// What e needs: one entry and its bytes, and its own reservation.
	n, b := 1+e.reserved.entries(), e.size+e.reserved.bytes()
	var park *memoryEntry
	slot := successorSlot(e.rec.Kind)
	if ps != nil {
		if p, ok := ps.recs[e.rec.Park]; ok && p.reserved[slot] > 0 {
			park = p // e takes the place its challenge reserved for it
			n--
			b -= int64(p.reserved[slot])
		}
	}
	if !s.admit(n, b, e.rec.challenge()) {
		return ErrStoreFull
	}
	if park != nil {
		park.reserved[slot] = 0
		if e.rec.Kind == KindOutcome {
			// The kept answer is the last record a browser flow writes:
			// what its challenge still reserves is no longer needed.
			s.admit(-park.reserved.entries(), -park.reserved.bytes(), false)
			park.reserved = reserve{}
		}
	}
	sh.recs[e.rec.ID] = e
	sh.heap.push(e)
	return nil
}

// admit adds n entries and b bytes to the counts if they stay within the
// limits (an eighth less for a new challenge) and reports whether they did.
// Giving back (n, b <= 0) always succeeds.
func (s *MemoryStore) admit(n, b int64, challenge bool) bool {
	maxEntries, maxBytes := s.maxEntries, s.maxBytes
	if challenge {
		maxEntries -= s.maxEntries / 8
		maxBytes -= s.maxBytes / 8
	}
	if !raise(&s.entries, n, maxEntries) {
		return false
	}
	if !raise(&s.bytes, b, maxBytes) {
		s.entries.Add(-n)
		return false
	}
	return true
}

// raise adds d to c unless that takes c above limit.
func raise(c *atomic.Int64, d, limit int64) bool {
	if d <= 0 {
		c.Add(d)
		return true
	}
	for {
		v := c.Load()
		if v+d > limit {
			return false
		}
		if c.CompareAndSwap(v, v+d) {
			return true
		}
	}
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, id string) (*Record, error) {
	rec, consumed, err := s.find(id, false)
	if err != nil {
		return nil, err
	}
	c := rec.clone() // outside the lock: a stored record is never written
	c.Consumed = consumed
	return c, nil
}

// Consume implements Store.
func (s *MemoryStore) Consume(_ context.Context, id string) (*Record, error) {
	rec, consumed, err := s.find(id, true)
	if err != nil {
		return nil, err
	}
	if consumed {
		return nil, ErrConsumed
	}
	c := rec.clone()
	c.Consumed = true
	return c, nil
}

// find returns the live record id and whether it was consumed before;
// consume marks it consumed.
func (s *MemoryStore) find(id string, consume bool) (*Record, bool, error) {
	sh := s.shard(id)
	now := unixNano(s.now())
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e, ok := sh.recs[id]
	if !ok {
		return nil, false, ErrNotFound
	}
	if now >= e.exp {
		s.remove(sh, e)
		return nil, false, ErrNotFound
	}
	was := e.consumed
	if consume {
		e.consumed = true
	}
	return &e.rec, was, nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	sh := s.shard(id)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if e, ok := sh.recs[id]; ok {
		s.remove(sh, e)
	}
	return nil
}

// Len returns the number of records held, expired ones included until
// they are dropped.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.recs)
		sh.mu.Unlock()
	}
	return n
}

// MemoryUsage is what a MemoryStore holds, as counted against its limits.
type MemoryUsage struct {
	Records int // records held, expired ones included until they are dropped
	Bytes   int // what those records take in memory
	// ReservedEntries and ReservedBytes are kept back for the records
	// that pending challenges will write once passed; they count against
	// the limits too.
	ReservedEntries int
	ReservedBytes   int
}

// Usage returns what the store holds and reserves. It visits every record:
// call it for monitoring, not on every request.
func (s *MemoryStore) Usage() MemoryUsage {
	var u MemoryUsage
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for _, e := range sh.recs {
			u.Records++
			u.Bytes += int(e.size)
			u.ReservedEntries += int(e.reserved.entries())
			u.ReservedBytes += int(e.reserved.bytes())
		}
		sh.mu.Unlock()
	}
	return u
}

func (s *MemoryStore) shardOf(id string) int {
	return int(maphash.String(s.seed, id) % memoryShards)
}

func (s *MemoryStore) shard(id string) *memoryShard { return &s.shards[s.shardOf(id)] }

// remove drops e from sh and gives back what it held and reserved.
func (s *MemoryStore) remove(sh *memoryShard, e *memoryEntry) {
	delete(sh.recs, e.rec.ID)
	sh.heap.remove(int(e.idx))
	s.admit(-1-e.reserved.entries(), -e.size-e.reserved.bytes(), false)
}

// expire drops the records of sh whose expiry has passed.
func (s *MemoryStore) expire(sh *memoryShard, now int64) {
	for len(sh.heap) > 0 && sh.heap[0].exp <= now {
		s.remove(sh, sh.heap[0])
	}
}

func (s *MemoryStore) expireAll(now int64) {
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.expire(sh, now)
		sh.mu.Unlock()
	}
}

// lockPair locks shard i and, when j is another shard, j too, the lower
// index first, so that two Puts never wait for each other's second lock.
func (s *MemoryStore) lockPair(i, j int) {
	if j < 0 || j == i {
		s.shards[i].mu.Lock()
		return
	}
	s.shards[min(i, j)].mu.Lock()
	s.shards[max(i, j)].mu.Lock()
}

func (s *MemoryStore) unlockPair(i, j int) {
	s.shards[i].mu.Unlock()
	if j >= 0 && j != i {
		s.shards[j].mu.Unlock()
	}
}
