package stepup

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Store keeps records server-side, shared by every instance of the
// application that serves the same users.
//
// The contract:
//   - Put inserts a new record. It returns ErrExists when a live record has
//     the same ID and ErrStoreFull when a bounded store cannot take it; it
//     never overwrites.
//   - A bounded store keeps a reserve: it refuses a new challenge (KindPark,
//     KindAPI) with ErrStoreFull before it is completely full, and lets the
//     records that follow a passed challenge (KindUsed, KindOutcome,
//     KindPass, KindGrant) use the reserve. A full store then turns away new
//     challenges (the guard answers 503 with Retry-After) but never the
//     callback or token retry of a user who already passed one.
//   - Get returns a copy of the record, consumed or not. A missing record or
//     one whose Expires has passed is ErrNotFound.
//   - Consume atomically marks a pending record consumed and returns it. Of
//     any number of concurrent callers for one ID, across all instances,
//     exactly one succeeds; the others get ErrConsumed. Missing or expired
//     is ErrNotFound.
//   - Delete removes a record; deleting a missing record is not an error.
//
// Any other error means the store could not answer; the guard then fails
// closed. Implementations must not keep references to the caller's Record.
type Store interface {
	Put(ctx context.Context, rec *Record) error
	Get(ctx context.Context, id string) (*Record, error)
	Consume(ctx context.Context, id string) (*Record, error)
	Delete(ctx context.Context, id string) error
}

// MemoryStore is a Store in the memory of one process, bounded in entries
// and bytes, that forgets records when they expire. It suits a single
// instance; several instances need a shared store such as stores/redis.
type MemoryStore struct {
	mu         sync.Mutex
	recs       map[string]*Record
	bytes      int
	maxEntries int
	maxBytes   int
	now        func() time.Time
	puts       int
}

var _ Store = (*MemoryStore)(nil)

// MemoryOption configures a MemoryStore.
type MemoryOption func(*MemoryStore)

// MemoryLimits bounds the store. Defaults: 10,000 records and 64 MiB,
// counting what each record really holds in memory. When the store is full
// of live records, Put returns ErrStoreFull: nothing pending is ever evicted
// to make room. An eighth of each limit is a reserve that new challenges
// (KindPark, KindAPI) cannot use, so that users who passed a challenge can
// still finish when the store is full; see Store.
func MemoryLimits(entries, bytes int) MemoryOption {
	return func(s *MemoryStore) {
		if entries > 0 {
			s.maxEntries = entries
		}
		if bytes > 0 {
			s.maxBytes = bytes
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
		recs:       make(map[string]*Record),
		maxEntries: 10000,
		maxBytes:   64 << 20,
		now:        time.Now,
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Put implements Store.
func (s *MemoryStore) Put(_ context.Context, rec *Record) error {
	if rec == nil || rec.ID == "" {
		return fmt.Errorf("stepup: memory store: record without id")
	}
	c := rec.clone()
	size := c.size()
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if old, ok := s.recs[c.ID]; ok {
		if now.Before(old.Expires) {
			return ErrExists
		}
		s.remove(c.ID)
	}
	s.puts++
	maxEntries, maxBytes := s.maxEntries, s.maxBytes
	if c.challenge() {
		maxEntries -= s.maxEntries / 8
		maxBytes -= s.maxBytes / 8
	}
	if s.puts%1024 == 0 || len(s.recs) >= maxEntries || s.bytes+size > maxBytes {
		s.sweep(now)
	}
	if len(s.recs) >= maxEntries || s.bytes+size > maxBytes {
		return ErrStoreFull
	}
	s.recs[c.ID] = c
	s.bytes += size
	return nil
}

// Get implements Store.
func (s *MemoryStore) Get(_ context.Context, id string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.live(id)
	if err != nil {
		return nil, err
	}
	return r.clone(), nil
}

// Consume implements Store.
func (s *MemoryStore) Consume(_ context.Context, id string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.live(id)
	if err != nil {
		return nil, err
	}
	if r.Consumed {
		return nil, ErrConsumed
	}
	r.Consumed = true
	return r.clone(), nil
}

// Delete implements Store.
func (s *MemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(id)
	return nil
}

// Len returns the number of records held, expired ones included until
// they are swept.
func (s *MemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *MemoryStore) live(id string) (*Record, error) {
	r, ok := s.recs[id]
	if !ok {
		return nil, ErrNotFound
	}
	if !s.now().Before(r.Expires) {
		s.remove(id)
		return nil, ErrNotFound
	}
	return r, nil
}

func (s *MemoryStore) remove(id string) {
	if r, ok := s.recs[id]; ok {
		s.bytes -= r.size()
		delete(s.recs, id)
	}
}

func (s *MemoryStore) sweep(now time.Time) {
	for id, r := range s.recs {
		if !now.Before(r.Expires) {
			s.remove(id)
		}
	}
}
