package pgstore

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/stepupkit/stepup"
)

// A counted challenge is a row of stepup_slots per count it is in: one
// under the owner userOwner(s), and one under sessionOwner(s, session) for
// its session and for a session it is attached to, each in the slot's
// bucket (stepup.Slot.Bucket). Owners are hashes, so
// that user and session ids stay out of the database.

// reserveSQL checks both caps and counts the slot, in one statement that
// runs after the user's advisory lock is taken (see Reserve), so that no
// other Reserve for the user runs between its check and its insert. $1
// user owner, $2 session owner (empty for none), $3 the slot's At, $4 per-user cap,
// $5 per-session cap, $6 slot id, $7 expiry. It answers, for the user and
// for the session, the expiry of the oldest slot in the way (the cap-th
// newest that has not expired), NULL when below the cap; when both are
// NULL it counted the slot.
const reserveSQL = `WITH u AS (
	SELECT expires FROM stepup_slots WHERE owner = $1 AND expires > $3
	ORDER BY expires DESC OFFSET $4 - 1 LIMIT 1
), s AS (
	SELECT expires FROM stepup_slots WHERE $2 <> '' AND owner = $2 AND expires > $3
	ORDER BY expires DESC OFFSET $5 - 1 LIMIT 1
), counted AS (
	INSERT INTO stepup_slots (owner, id, expires)
	SELECT o, $6, $7 FROM unnest(ARRAY[$1, $2]::text[]) AS o
	WHERE o <> '' AND NOT EXISTS (SELECT FROM u) AND NOT EXISTS (SELECT FROM s)
	ON CONFLICT (owner, id) DO NOTHING
)
SELECT (SELECT expires FROM u), (SELECT expires FROM s)`

const attachSQL = `INSERT INTO stepup_slots (owner, id, expires) VALUES ($1, $2, $3) ON CONFLICT (owner, id) DO NOTHING`

const releaseSQL = `DELETE FROM stepup_slots WHERE id = $1 AND owner = ANY($2::text[])`

// passReleaseSQL releases the slots ($1 owners, $2 ids, pairwise) when
// the slot $4 is counted for the owner $3: sent after reserveSQL in the
// same transaction (see Pass), it releases only when that counted it.
const passReleaseSQL = `DELETE FROM stepup_slots d USING unnest($1::text[], $2::text[]) AS f(owner, id)
WHERE d.owner = f.owner AND d.id = f.id AND EXISTS (SELECT FROM stepup_slots WHERE owner = $3 AND id = $4)`

// hashID is a digest of parts, each prefixed with its length so that no
// two lists of parts make the same input.
func hashID(parts ...string) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:%s", len(p), p)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func owner(parts ...string) string {
	sum := hashID(parts...)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// userOwner names the count of s.User in s.Bucket; sessionOwner that of
// one session of s.User in s.Bucket. Every field of the Slot that tells
// one count from another is a part of the hash, length-prefixed, so that
// no two counts share an owner.
func userOwner(s stepup.Slot) string { return owner("u", s.Bucket, s.User) }

func sessionOwner(s stepup.Slot, session string) string { return owner("s", s.Bucket, s.User, session) }

// userLock is the key of the transaction-level advisory lock that
// serializes the Reserves of one user, in every bucket, on every instance. Two users whose
// keys collide only wait for each other.
func userLock(s stepup.Slot) int64 {
	sum := hashID("stepup-counter-lock", s.User)
	return int64(binary.BigEndian.Uint64(sum[:8]))
}

// Reserve implements stepup.Counter: one round trip sends the user's
// advisory lock and reserveSQL together, which PostgreSQL runs as one
// transaction; the lock is released when it ends.
func (s *Store) Reserve(ctx context.Context, sl stepup.Slot, perUser, perSession int) (time.Duration, error) {
	if perUser < 1 || perSession < 1 {
		return 0, errors.New("pgstore: reserve: caps must be at least 1")
	}
	session := ""
	if sl.Session != "" {
		session = sessionOwner(sl, sl.Session)
	}
	var byUser, bySession pgtype.Timestamptz
	err := s.call(ctx, "reserve", func(ctx context.Context) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, userLock(sl))
		b.Queue(reserveSQL, userOwner(sl), session, floorMicro(sl.At), perUser, perSession, sl.ID, ceilMicro(sl.Expires)).
			QueryRow(func(row pgx.Row) error { return row.Scan(&byUser, &bySession) })
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return 0, err
	}
	inTheWay := byUser
	if !inTheWay.Valid {
		inTheWay = bySession
	}
	if !inTheWay.Valid {
		return 0, nil
	}
	return max(inTheWay.Time.Sub(sl.At), time.Microsecond), stepup.ErrTooManyChallenges
}

// Pass implements stepup.PassCounter: the user's advisory lock,
// reserveSQL and passReleaseSQL in one round trip, which PostgreSQL runs as
// one transaction.
func (s *Store) Pass(ctx context.Context, sl stepup.Slot, ceiling int, from []stepup.Slot) error {
	if ceiling < 1 {
		return errors.New("pgstore: pass: the ceiling must be at least 1")
	}
	session := ""
	if sl.Session != "" {
		session = sessionOwner(sl, sl.Session)
	}
	var owners, ids []string
	for _, f := range from {
		if f.User != sl.User {
			return errors.New("pgstore: pass: a slot of another user")
		}
		owners, ids = append(owners, userOwner(f)), append(ids, f.ID)
		if f.Session != "" {
			owners, ids = append(owners, sessionOwner(f, f.Session)), append(ids, f.ID)
		}
	}
	var byUser, bySession pgtype.Timestamptz
	err := s.call(ctx, "pass", func(ctx context.Context) error {
		b := &pgx.Batch{}
		b.Queue(`SELECT pg_advisory_xact_lock($1)`, userLock(sl))
		b.Queue(reserveSQL, userOwner(sl), session, floorMicro(sl.At), ceiling, ceiling, sl.ID, ceilMicro(sl.Expires)).
			QueryRow(func(row pgx.Row) error { return row.Scan(&byUser, &bySession) })
		b.Queue(passReleaseSQL, owners, ids, userOwner(sl), sl.ID)
		return s.pool.SendBatch(ctx, b).Close()
	})
	if err != nil {
		return err
	}
	if byUser.Valid || bySession.Valid {
		return fmt.Errorf("pgstore: pass: %w", stepup.ErrTooManyChallenges)
	}
	return nil
}

// Attach implements stepup.Counter.
func (s *Store) Attach(ctx context.Context, sl stepup.Slot, session string) error {
	return s.call(ctx, "attach", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, attachSQL, sessionOwner(sl, session), sl.ID, ceilMicro(sl.Expires))
		return err
	})
}

// Release implements stepup.Counter.
func (s *Store) Release(ctx context.Context, sl stepup.Slot) error {
	owners := []string{userOwner(sl)}
	if sl.Session != "" {
		owners = append(owners, sessionOwner(sl, sl.Session))
	}
	return s.call(ctx, "release", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, releaseSQL, sl.ID, owners)
		return err
	})
}
