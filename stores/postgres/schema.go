package pgstore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema is the SQL that Migrate runs: two tables and their indexes, in the
// first schema of the connection's search_path. Every statement is
// idempotent. Run it from your own migration tool instead if you prefer;
// the Store never changes the schema.
//
// stepup_records holds one row per record: the bytes of
// stepup.MarshalRecord, its expiry, and whether it was consumed.
// stepup_slots holds one row per challenge counted for a user, or for a
// session of a user, in a bucket: owner is a hash of the bucket, the user
// id (and the session id), never the ids themselves. The expiry indexes let Cleanup find expired rows
// without a table scan, and Reserve count an owner's live slots without
// reading its expired ones. The tables are logged (not UNLOGGED): a pending
// park and a consumed mark must survive a crash of the database.
const Schema = `CREATE TABLE IF NOT EXISTS stepup_records (
	id       text        PRIMARY KEY,
	expires  timestamptz NOT NULL,
	consumed boolean     NOT NULL DEFAULT false,
	record   bytea       NOT NULL
) WITH (fillfactor = 90);
CREATE INDEX IF NOT EXISTS stepup_records_expires ON stepup_records (expires);
CREATE TABLE IF NOT EXISTS stepup_slots (
	owner   text        NOT NULL,
	id      text        NOT NULL,
	expires timestamptz NOT NULL,
	PRIMARY KEY (owner, id)
);
CREATE INDEX IF NOT EXISTS stepup_slots_owner_expires ON stepup_slots (owner, expires);
CREATE INDEX IF NOT EXISTS stepup_slots_expires ON stepup_slots (expires);
`

// migrateLock is the transaction-level advisory lock that Migrate holds,
// so that instances starting together create the schema once.
const migrateLock = 0x73746570_75706d67 // "stepupmg"

// Migrate creates the tables and indexes of Schema if they do not exist,
// in one transaction under an advisory lock, so that any number of
// instances can call it at start. It is the only DDL this package runs.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrateLock)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, Schema)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgstore: migrate: %w", err)
	}
	return nil
}

// cleanupBatch is how many expired rows of each table one cleanup
// statement deletes at most.
const cleanupBatch = 256

// cleanupSQL deletes up to $2 expired rows of each table, found by their
// expiry index (the oldest first) and locked with SKIP LOCKED, so that
// cleanups never wait for each other or for a request. It answers how
// many records and slots it deleted.
const cleanupSQL = `WITH r AS (
	DELETE FROM stepup_records WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM stepup_records WHERE expires <= $1 ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED))
	RETURNING 1
), s AS (
	DELETE FROM stepup_slots WHERE ctid = ANY(ARRAY(
		SELECT ctid FROM stepup_slots WHERE expires <= $1 ORDER BY expires LIMIT $2 FOR UPDATE SKIP LOCKED))
	RETURNING 1
)
SELECT (SELECT count(*) FROM r), (SELECT count(*) FROM s)`

// Cleanup deletes the rows of records and counted challenges that have
// expired by the Store's clock, in batches of a few hundred rows, each its
// own short statement, until none is left; it returns how many rows it
// deleted. Expired rows are never read as live, so Cleanup only keeps the
// tables small: a Store runs a batch every CleanupEvery Puts, and an
// application that turns that off calls Cleanup from time to time, on any
// instance.
func (s *Store) Cleanup(ctx context.Context) (int64, error) {
	now := s.now()
	total := int64(0)
	for {
		n, err := s.cleanup(ctx, now, cleanupBatch)
		total += n
		if err != nil || n == 0 {
			return total, err
		}
	}
}

// cleanup runs one batch of at most batch rows per table.
func (s *Store) cleanup(ctx context.Context, now time.Time, batch int) (int64, error) {
	var records, slots int64
	err := s.call(ctx, "cleanup", func(ctx context.Context) error {
		return s.pool.QueryRow(ctx, cleanupSQL, floorMicro(now), batch).Scan(&records, &slots)
	})
	return records + slots, err
}
