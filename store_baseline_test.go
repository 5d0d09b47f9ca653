package stepup

// legacyMemoryStore is MemoryStore as it was before it was sharded and
// indexed (one map under one mutex, a sweep of the whole map every 1,024th
// Put and at every refused one), kept verbatim as the baseline of
// store_bench_test.go's benchmarks, which reach it through
// NewLegacyMemoryStore.

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// NewLegacyMemoryStore returns the baseline store with the given limits.
func NewLegacyMemoryStore(maxEntries, maxBytes int, now func() time.Time) Store {
	return &legacyMemoryStore{recs: make(map[string]*Record), maxEntries: maxEntries, maxBytes: maxBytes, now: now}
}

const (
	legacyRecordOverhead = 384
	legacyHeaderOverhead = 384
	legacyKeyOverhead    = 128
	legacyValueOverhead  = 16
)

func legacySize(r *Record) int {
	n := legacyRecordOverhead + len(r.ID) + len(r.UserID) + len(r.Action) + len(r.Method) + len(r.Path) + len(r.Query) +
		len(r.Body) + len(r.BodyHash)
	if len(r.Header) > 0 {
		n += legacyHeaderOverhead
	}
	for _, h := range r.Shown {
		n += 24 + len(h)
	}
	for k, vs := range r.Header {
		n += legacyKeyOverhead + len(k)
		for _, v := range vs {
			n += legacyValueOverhead + len(v)
		}
	}
	return n
}

type legacyMemoryStore struct {
	mu         sync.Mutex
	recs       map[string]*Record
	bytes      int
	maxEntries int
	maxBytes   int
	now        func() time.Time
	puts       int
}

// Put implements Store.
func (s *legacyMemoryStore) Put(_ context.Context, rec *Record) error {
	if rec == nil || rec.ID == "" {
		return fmt.Errorf("stepup: memory store: record without id")
	}
	c := rec.clone()
	size := legacySize(c)
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
func (s *legacyMemoryStore) Get(_ context.Context, id string) (*Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, err := s.live(id)
	if err != nil {
		return nil, err
	}
	return r.clone(), nil
}

// Consume implements Store.
func (s *legacyMemoryStore) Consume(_ context.Context, id string) (*Record, error) {
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
func (s *legacyMemoryStore) Delete(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.remove(id)
	return nil
}

// Len returns the number of records held, expired ones included until
// they are swept.
func (s *legacyMemoryStore) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *legacyMemoryStore) live(id string) (*Record, error) {
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

func (s *legacyMemoryStore) remove(id string) {
	if r, ok := s.recs[id]; ok {
		s.bytes -= legacySize(r)
		delete(s.recs, id)
	}
}

func (s *legacyMemoryStore) sweep(now time.Time) {
	for id, r := range s.recs {
		if !now.Before(r.Expires) {
			s.remove(id)
		}
	}
}
