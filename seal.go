package stepup

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Records sealed at rest (SECURITY.md, "Records in the Store"). The guard puts
// a sealedStore around Config.Store: every record it writes reaches the
// Store as
//
//	ID, Kind, Created, Expires, Park   in clear: what a Store needs (the times to the millisecond)
//	Sealed                             version (1 byte) | nonce (12) | AES-256-GCM ciphertext and tag
//
// with every other field of the record (body, query, headers, user,
// action, and any field added later: sealcodec.go finds them by
// reflection) as the plaintext, and the clear fields, bound to the
// version, as the additional data. A record read back opens only under the
// id it was asked for, with the kind, times and park it was written with:
// altered, planted, moved to another id (another user's park, an old
// record under a new id) or sealed with a key the guard does not have, it
// is refused, logged and treated as not found. Consumed stays the Store's.
const (
	sealVersion   = 1
	recordKeyInfo = "stepup store record v1: AES-256-GCM key"
	sealNonce     = 12
	sealTag       = 16
	sealOverhead  = 1 + sealNonce + sealTag
)

// recordRefused is the error for a record the Store returned that the
// guard did not seal, or sealed under another id, kind, park or times. It
// is ErrNotFound to errors.Is: what the guard makes of it.
type recordRefused struct{ reason error }

func (e *recordRefused) Error() string        { return "stepup: record refused: " + e.reason.Error() }
func (e *recordRefused) Unwrap() error        { return e.reason }
func (e *recordRefused) Is(target error) bool { return target == ErrNotFound }

// recordSealer seals records with the first of its AEADs and opens them
// with any. It is safe for concurrent use. owners are the keys, one per
// secret and in the same order, that name a user's grant slots (grants.go).
type recordSealer struct {
	aeads  []cipher.AEAD
	owners [][]byte
}

// processSealer is the sealer of the guards of this process that have no
// keys configured and a *MemoryStore: a random key, made once, that no
// other process has.
var processSealer = sync.OnceValues(func() (*recordSealer, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	return newSealerFrom([][]byte{secret}, "record key")
})

// newRecordSealer picks the record keys for cfg: RecordKeys; else keys
// derived from CookieKeys under their own label; else, for a *MemoryStore
// only, the process's random key. Any other Store without keys is an
// error: the instances that share it could not open each other's records.
func newRecordSealer(cfg *Config) (*recordSealer, error) {
	switch {
	case len(cfg.RecordKeys) > 0:
		return newSealerFrom(cfg.RecordKeys, "Config.RecordKeys")
	case len(cfg.CookieKeys) > 0:
		return newSealerFrom(cfg.CookieKeys, "Config.CookieKeys")
	}
	if _, ok := cfg.Store.(*MemoryStore); ok {
		return processSealer()
	}
	return nil, fmt.Errorf("stepup: Config.RecordKeys (or Config.CookieKeys) is required with a %T Store: "+
		"the guard seals the records it keeps there, and every instance sharing the Store must open them", cfg.Store)
}

// newSealerFrom derives a sealer's keys from secrets (field names them in
// errors).
func newSealerFrom(secrets [][]byte, field string) (*recordSealer, error) {
	aeads, err := deriveAEADs(secrets, field, recordKeyInfo)
	if err != nil {
		return nil, err
	}
	owners, err := deriveOwnerKeys(secrets)
	return &recordSealer{aeads: aeads, owners: owners}, err
}

// additionalData appends to dst what binds a sealed record to its clear
// fields.
func additionalData(dst []byte, rec *Record) []byte {
	dst = append(dst, "stepup record\x00"...)
	dst = append(dst, sealVersion, byte(rec.Kind))
	dst = appendLenBytes(dst, rec.ID)
	dst = appendLenBytes(dst, rec.Park)
	for _, t := range [...]time.Time{rec.Created, rec.Expires} {
		dst = binary.BigEndian.AppendUint64(dst, uint64(t.Unix()))
		dst = binary.BigEndian.AppendUint32(dst, uint32(t.Nanosecond()))
	}
	return dst
}

// adLen is the length of rec's additional data.
func adLen(rec *Record) int {
	return len("stepup record\x00") + 2 + 2*binary.MaxVarintLen64 + len(rec.ID) + len(rec.Park) + 2*12
}

// seal returns the record a Store keeps for rec: three allocations, the
// record, its sealed bytes and the additional data.
func (s *recordSealer) seal(rec *Record) (*Record, error) {
	strs, _, values := rec.stringBytes()
	guess := sealOverhead + strs + rec.byteLen() + 8*len(sealedFields) + 4*values + 4*len(rec.Shown)
	buf := make([]byte, 1+sealNonce, guess)
	buf[0] = sealVersion
	_, _ = rand.Read(buf[1:])
	buf, err := appendSealedFields(buf, rec)
	if err != nil {
		return nil, fmt.Errorf("stepup: sealing record: %w", err)
	}
	buf = slices.Grow(buf, sealTag)
	// The times to the millisecond, as precise as the Store contract asks
	// a Store to keep them (a database column may keep microseconds):
	// they must come back exactly for the record to open.
	out := &Record{ID: rec.ID, Kind: rec.Kind, Created: rec.Created.Truncate(time.Millisecond),
		Expires: rec.Expires.Truncate(time.Millisecond), Park: rec.Park, Consumed: rec.Consumed}
	ad := additionalData(make([]byte, 0, adLen(out)), out)
	out.Sealed = s.aeads[0].Seal(buf[:1+sealNonce], buf[1:1+sealNonce], buf[1+sealNonce:], ad)
	return out, nil
}

// open returns the record sealed in stored, which the Store returned for
// id, or why it is refused. Stored bytes are untrusted.
func (s *recordSealer) open(id string, stored *Record) (*Record, error) {
	switch {
	case stored == nil:
		return nil, errors.New("no record")
	case stored.ID != id:
		return nil, errors.New("the record under this id names another")
	case len(stored.Sealed) < sealOverhead || stored.Sealed[0] != sealVersion:
		return nil, errors.New("not sealed by the guard")
	}
	ad := additionalData(make([]byte, 0, adLen(stored)), stored)
	plain, ok := openAny(s.aeads, nil, stored.Sealed[1:1+sealNonce], stored.Sealed[1+sealNonce:], ad)
	if !ok {
		return nil, errors.New("does not open: altered, moved from another id, planted, or sealed with another key")
	}
	rec := &Record{ID: stored.ID, Kind: stored.Kind, Created: stored.Created, Expires: stored.Expires, Park: stored.Park,
		Consumed: stored.Consumed}
	if err := decodeSealedFields(plain, rec); err != nil {
		return nil, err
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	return rec, nil
}

// sealedSize is what the sealed form of rec counts in a MemoryStore, with
// extra more bytes of plaintext.
func (s *recordSealer) sealedSize(rec *Record, extra int) int {
	var buf [512]byte
	plain, err := appendSealedFields(buf[:0], rec)
	if err != nil {
		return 0
	}
	return recordSize(len(rec.ID)+len(rec.Park), sealOverhead+len(plain)+extra, false, 0, 0)
}

// successors is Record.successors for the sealed forms of the records the
// guard writes after the challenge r is passed: each is built as spend,
// grant, resumeGet and keepOutcome build it and measured sealed. The kept
// answer of a parked POST is bounded as Record.successors bounds it:
// outcomeBody bytes of body, 256 bytes of Content-Type and Location.
func (s *recordSealer) successors(r *Record, outcomeBody int) reserve {
	var rs reserve
	succ := &Record{} // each successor in turn
	set := func(k Kind, extra int) {
		succ.Kind = k
		rs[successorSlot(k)] = int32(min(s.sealedSize(succ, extra), math.MaxInt32))
		*succ = Record{}
	}
	const pad = "0123456789012345678901234567890123456789012345" // ids are measured by length
	succ.ID, succ.Park = pad[:usedIDLen], r.ID
	set(KindUsed, 0)
	if r.Remember > 0 {
		// A grant's slot id, and the method it was earned with, at its longest.
		succ.ID, succ.UserID, succ.Action, succ.Park = pad[:grantIDLen], r.UserID, r.Action, r.ID
		succ.VerificationMethod = longestMethod
		set(KindGrant, 0)
	}
	if r.Kind != KindPark && r.Kind != KindReview {
		return rs
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		succ.ID, succ.UserID, succ.Action, succ.Method, succ.Path, succ.Query, succ.Judged, succ.Park =
			pad[:22], r.UserID, r.Action, http.MethodGet, r.Path, r.Query, r.Judged, r.ID
		set(KindPass, 0) // the pass carries the park's judged digest
		succ.ID, succ.Status, succ.Header, succ.Park = outcomeID(r.ID), http.StatusSeeOther, http.Header{"Location": {location(r)}}, r.ID
		set(KindOutcome, 0)
		return rs
	}
	body := min(max(outcomeBody, 0), 1<<30)
	// The answer at its bound, measured: a status of three digits (each
	// takes two bytes), 256 bytes of Content-Type and Location, and body
	// bytes of body.
	succ.ID, succ.Status, succ.Park = outcomeID(r.ID), http.StatusOK, r.ID
	succ.Header = http.Header{"Content-Type": {outcomeValueBound}, "Location": {outcomeValueBound}}
	set(KindOutcome, sealedBodyLen(body))
	return rs
}

// outcomeValueBound is a kept answer's Content-Type or Location at the
// bound a reservation makes for them: 128 bytes each, 256 together, the
// split whose length prefixes are longest.
var outcomeValueBound = strings.Repeat("-", 128)

// sealedBodyLen is what a Body of n bytes adds to a sealed plaintext: its
// name, its length and its bytes; nothing when empty (it is left out).
func sealedBodyLen(n int) int {
	if n == 0 {
		return 0
	}
	var b [binary.MaxVarintLen64]byte
	return len(appendLenBytes(b[:0], "Body")) + binary.PutUvarint(b[:], uint64(n)) + n
}

// sealedStore is the Store the guard uses: Config.Store, with every record
// sealed on its way in and opened on its way out.
type sealedStore struct {
	inner  Store
	mem    *MemoryStore // inner when it is one: it reserves for sealed successors
	sealer *recordSealer
	logger *slog.Logger
}

var (
	_ Spender     = (*sealedStore)(nil)
	_ MultiGetter = (*sealedStore)(nil)
)

func newSealedStore(inner Store, sealer *recordSealer, logger *slog.Logger) *sealedStore {
	s := &sealedStore{inner: inner, sealer: sealer, logger: logger}
	s.mem, _ = inner.(*MemoryStore)
	return s
}

// Put implements Store.
func (s *sealedStore) Put(ctx context.Context, rec *Record) error {
	sealed, err := s.sealer.seal(rec)
	if err != nil {
		return err
	}
	if s.mem != nil {
		return s.mem.put(sealed, func(outcomeBody int) reserve { return s.sealer.successors(rec, outcomeBody) })
	}
	return s.inner.Put(ctx, sealed)
}

// Get implements Store.
func (s *sealedStore) Get(ctx context.Context, id string) (*Record, error) {
	stored, err := s.inner.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, id, stored)
}

// GetMany implements MultiGetter: in one call when Config.Store is a
// MultiGetter, else with a Get per id. A record that does not open is nil,
// as Get calls it ErrNotFound.
func (s *sealedStore) GetMany(ctx context.Context, ids ...string) ([]*Record, error) {
	mg, ok := s.inner.(MultiGetter)
	if !ok {
		out := make([]*Record, len(ids))
		for i, id := range ids {
			rec, err := s.Get(ctx, id)
			if err != nil && !errors.Is(err, ErrNotFound) {
				return nil, err
			}
			out[i] = rec
		}
		return out, nil
	}
	stored, err := mg.GetMany(ctx, ids...)
	if err != nil {
		return nil, err
	}
	if len(stored) != len(ids) {
		return nil, fmt.Errorf("stepup: store: GetMany returned %d records for %d ids", len(stored), len(ids))
	}
	out := make([]*Record, len(ids))
	for i, st := range stored {
		if st != nil {
			out[i], _ = s.open(ctx, ids[i], st)
		}
	}
	return out, nil
}

// Consume implements Store.
func (s *sealedStore) Consume(ctx context.Context, id string) (*Record, error) {
	stored, err := s.inner.Consume(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, id, stored)
}

// Spend implements Spender: in one step when Config.Store is a Spender,
// else as a Put of used then a Consume of park; a park that cannot be
// consumed then leaves used written (a token spent for nothing).
func (s *sealedStore) Spend(ctx context.Context, used *Record, park string) (*Record, error) {
	sealed, err := s.sealer.seal(used)
	if err != nil {
		return nil, err
	}
	sp, ok := s.inner.(Spender)
	if !ok {
		if err := s.inner.Put(ctx, sealed); err != nil {
			return nil, err
		}
		return s.Consume(ctx, park)
	}
	stored, err := sp.Spend(ctx, sealed, park)
	if err != nil {
		return nil, err
	}
	return s.open(ctx, park, stored)
}

// Delete implements Store.
func (s *sealedStore) Delete(ctx context.Context, id string) error { return s.inner.Delete(ctx, id) }

// open opens what the Store returned for id, or logs why not and answers
// ErrNotFound: a record the guard cannot trust is no record.
func (s *sealedStore) open(ctx context.Context, id string, stored *Record) (*Record, error) {
	rec, err := s.sealer.open(id, stored)
	if err == nil {
		return rec, nil
	}
	err = &recordRefused{reason: err}
	logger := s.logger
	if logger == nil {
		logger = slog.Default()
	}
	kind := Kind(0)
	if stored != nil {
		kind = stored.Kind
	}
	logger.LogAttrs(ctx, slog.LevelError, "stepup", slog.String("event", "record_refused"),
		slog.Int("kind", int(kind)), slog.String("error", err.Error()))
	return nil, err
}
