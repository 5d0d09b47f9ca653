package pgstore

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepupkit/stepup"
)

// Store is a stepup.Store and a stepup.Counter in PostgreSQL, shared by
// every instance of the application that uses the same database (and
// search_path). It is safe for concurrent use; its options are fixed by
// New.
type Store struct {
	pool         *pgxpool.Pool
	timeout      time.Duration
	now          func() time.Time
	cleanupEvery uint64        // run one cleanup batch every this many Puts; 0 never
	puts         atomic.Uint64 // Puts so far, for cleanupEvery
}

var (
	_ stepup.MultiGetter = (*Store)(nil)
	_ stepup.PassCounter = (*Store)(nil)
)

// Option configures a Store.
type Option func(*Store)

// Timeout bounds every call to PostgreSQL: a database that does not answer
// in time is an error, and the guard fails closed (503). Default 2 seconds.
func Timeout(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.timeout = d
		}
	}
}

// Clock sets the clock that decides when records expire; it should be the
// guard's (stepup.Config.Now). Default time.Now. The database's own clock
// is never used, so instances decide alike whatever the server's time.
func Clock(now func() time.Time) Option {
	return func(s *Store) {
		if now != nil {
			s.now = now
		}
	}
}

// CleanupEvery sets how often a Put also deletes expired rows: every n-th
// Put of the Store runs one bounded batch (see Store.Cleanup) after its
// record is written. Default 32. n = 0 never does: call Cleanup yourself,
// for example from a ticker.
func CleanupEvery(n int) Option {
	return func(s *Store) {
		if n >= 0 {
			s.cleanupEvery = uint64(n)
		}
	}
}

// New returns a Store on pool. The schema must exist: see Migrate.
func New(pool *pgxpool.Pool, opts ...Option) *Store {
	s := &Store{pool: pool, timeout: 2 * time.Second, now: time.Now, cleanupEvery: 32}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Expiry is compared in the database at its precision, microseconds: the
// store's time is rounded down and an expiry up, so that a live record is
// never taken for an expired one, and decode then decides to the
// nanosecond.

func floorMicro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func ceilMicro(t time.Time) time.Time {
	if f := t.Truncate(time.Microsecond); !f.Equal(t) {
		return f.Add(time.Microsecond)
	}
	return t
}

// putSQL writes a record unless a live one has its id: a row whose expiry
// has passed is replaced. It affects one row when written, none when the
// id is taken; two Puts of one id wait for each other on its primary key.
const putSQL = `INSERT INTO stepup_records (id, expires, consumed, record) VALUES ($1, $2, $3, $4)
ON CONFLICT (id) DO UPDATE SET expires = EXCLUDED.expires, consumed = EXCLUDED.consumed, record = EXCLUDED.record
WHERE stepup_records.expires <= $5`

const getSQL = `SELECT record, consumed FROM stepup_records WHERE id = $1 AND expires > $2`

// consumeSQL marks a live, pending record consumed and returns it, in one
// statement: of concurrent Consumes, one takes the row lock and the others
// wait for it, then find the row consumed and update nothing. It answers
// (true, record) to the winner, (false, NULL) when the record is live but
// was consumed (before, or by the concurrent winner), and no row when there
// is no live record.
const consumeSQL = `WITH won AS (
	UPDATE stepup_records SET consumed = true
	WHERE id = $1 AND expires > $2 AND NOT consumed
	RETURNING record
)
SELECT true, record FROM won
UNION ALL
SELECT false, NULL FROM stepup_records WHERE id = $1 AND expires > $2 AND NOT EXISTS (SELECT FROM won)`

const deleteSQL = `DELETE FROM stepup_records WHERE id = $1`

// call runs f under the store's timeout and names a failure.
func (s *Store) call(ctx context.Context, op string, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := f(ctx); err != nil {
		return wrap(op, err)
	}
	return nil
}

// wrap names the operation that failed; a database out of disk is
// stepup.ErrStoreFull, and a missing table says what to run.
func wrap(op string, err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53100": // disk_full
			return fmt.Errorf("pgstore: %s: %w: %w", op, stepup.ErrStoreFull, err)
		case "42P01": // undefined_table
			return fmt.Errorf("pgstore: %s: %w (run pgstore.Migrate on this database and search_path)", op, err)
		}
	}
	return fmt.Errorf("pgstore: %s: %w", op, err)
}

// Put implements stepup.Store with one statement: it writes the record
// unless a live record has the id (stepup.ErrExists), replacing an
// expired one. A database out of disk is stepup.ErrStoreFull. Every
// CleanupEvery-th Put then deletes one batch of expired rows.
func (s *Store) Put(ctx context.Context, rec *stepup.Record) error {
	if rec == nil || rec.ID == "" {
		return errors.New("pgstore: put: record without id")
	}
	data, err := stepup.MarshalRecord(rec)
	if err != nil {
		return fmt.Errorf("pgstore: put: %w", err)
	}
	now := s.now()
	var written int64
	err = s.call(ctx, "put", func(ctx context.Context) error {
		tag, err := s.pool.Exec(ctx, putSQL, rec.ID, ceilMicro(rec.Expires), rec.Consumed, data, floorMicro(now))
		written = tag.RowsAffected()
		return err
	})
	if err != nil {
		return err
	}
	if written == 0 {
		return stepup.ErrExists
	}
	if s.cleanupEvery > 0 && s.puts.Add(1)%s.cleanupEvery == 0 {
		// Best effort: the record is written whatever this answers, and
		// what it leaves the next batch (or Cleanup) deletes.
		_, _ = s.cleanup(ctx, now, cleanupBatch)
	}
	return nil
}

// Get implements stepup.Store with one read.
func (s *Store) Get(ctx context.Context, id string) (*stepup.Record, error) {
	var (
		data     []byte
		consumed bool
		found    = true
	)
	now := s.now()
	err := s.call(ctx, "get", func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, getSQL, id, floorMicro(now)).Scan(&data, &consumed)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, stepup.ErrNotFound
	}
	return s.decode(id, data, consumed, now)
}

// getManySQL reads the live records among the ids $1.
const getManySQL = `SELECT id, record, consumed FROM stepup_records WHERE id = ANY($1::text[]) AND expires > $2`

// GetMany implements stepup.MultiGetter with one read.
func (s *Store) GetMany(ctx context.Context, ids ...string) ([]*stepup.Record, error) {
	type row struct {
		data     []byte
		consumed bool
	}
	found := map[string]row{}
	now := s.now()
	err := s.call(ctx, "get", func(ctx context.Context) error {
		rows, err := s.pool.Query(ctx, getManySQL, ids, floorMicro(now))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id string
			var r row
			if err := rows.Scan(&id, &r.data, &r.consumed); err != nil {
				return err
			}
			found[id] = r
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]*stepup.Record, len(ids))
	for i, id := range ids {
		r, ok := found[id]
		if !ok {
			continue
		}
		rec, err := s.decode(id, r.data, r.consumed, now)
		switch {
		case errors.Is(err, stepup.ErrNotFound):
		case err != nil:
			return nil, err
		default:
			out[i] = rec
		}
	}
	return out, nil
}

// Consume implements stepup.Store with one statement (see consumeSQL): of
// any number of concurrent callers on any instance, exactly one gets the
// record.
func (s *Store) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	var (
		data  []byte
		won   bool
		found = true
	)
	now := s.now()
	err := s.call(ctx, "consume", func(ctx context.Context) error {
		err := s.pool.QueryRow(ctx, consumeSQL, id, floorMicro(now)).Scan(&won, &data)
		if errors.Is(err, pgx.ErrNoRows) {
			found = false
			return nil
		}
		return err
	})
	switch {
	case err != nil:
		return nil, err
	case !found:
		return nil, stepup.ErrNotFound
	case !won:
		return nil, stepup.ErrConsumed
	}
	return s.decode(id, data, true, now)
}

// Delete implements stepup.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	return s.call(ctx, "delete", func(ctx context.Context) error {
		_, err := s.pool.Exec(ctx, deleteSQL, id)
		return err
	})
}

// decode checks bytes read from the database, which are not trusted: a
// record that does not decode, or is not the one asked for, is an error.
func (s *Store) decode(id string, data []byte, consumed bool, now time.Time) (*stepup.Record, error) {
	rec, err := stepup.UnmarshalRecord(data)
	if err != nil {
		return nil, fmt.Errorf("pgstore: %w", err)
	}
	if rec.ID != id {
		return nil, errors.New("pgstore: the record under this id names another")
	}
	if !now.Before(rec.Expires) {
		return nil, stepup.ErrNotFound
	}
	rec.Consumed = consumed
	return rec, nil
}
