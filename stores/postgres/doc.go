// Package pgstore keeps stepup's records in PostgreSQL, so that several
// instances of an application behind a load balancer share them through
// the database they already run: a request parked on one instance is
// replayed by whichever instance the callback reaches, exactly once; a
// token spent, a pass or a Remember grant given on one instance is seen by
// all; and the challenge caps (stepup.Config.MaxChallengesPerUser and
// MaxChallengesPerSession) count across all of them, because the Store is
// also a stepup.Counter.
//
//	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
//	if err != nil { … }
//	if err := pgstore.Migrate(ctx, pool); err != nil { … } // once at start, on any instance
//	guard, err := stepup.New(stepup.Config{
//		Store: pgstore.New(pool),
//		// Provider, Sessions, UserID, CallbackURL, Policies as usual
//	})
//
// # Schema
//
// Migrate creates two tables and their indexes in the first schema of the
// connection's search_path, if they do not exist, in one transaction under
// an advisory lock (instances may call it together). It is the only DDL
// the package runs; the Store never creates or alters anything. The SQL,
// also exported as Schema for migration tools:
//
//	CREATE TABLE IF NOT EXISTS stepup_records (
//		id       text        PRIMARY KEY,
//		expires  timestamptz NOT NULL,
//		consumed boolean     NOT NULL DEFAULT false,
//		record   bytea       NOT NULL
//	) WITH (fillfactor = 90);
//	CREATE INDEX IF NOT EXISTS stepup_records_expires ON stepup_records (expires);
//	CREATE TABLE IF NOT EXISTS stepup_slots (
//		owner   text        NOT NULL,
//		id      text        NOT NULL,
//		expires timestamptz NOT NULL,
//		PRIMARY KEY (owner, id)
//	);
//	CREATE INDEX IF NOT EXISTS stepup_slots_owner_expires ON stepup_slots (owner, expires);
//	CREATE INDEX IF NOT EXISTS stepup_slots_expires ON stepup_slots (expires);
//
// A record row holds the bytes of stepup.MarshalRecord (every field of the
// Record, as the guard gave it), its expiry and whether it was consumed. A
// slot row is one challenge counted for a user, or for one session of a
// user, in one bucket (stepup.Slot.Bucket: counts that never meet), under
// a SHA-256 of bucket and ids: user and session ids are not stored in
// stepup_slots. Keep both tables logged (not UNLOGGED): PostgreSQL
// empties an unlogged table after a crash, and a consumed mark must
// survive one.
//
// # Guarantees
//
// Every state change that must happen once is one statement, or one
// transaction under a lock:
//   - Put is one INSERT … ON CONFLICT (id) DO UPDATE … WHERE the existing
//     row has expired: it never overwrites a live record
//     (stepup.ErrExists), and of concurrent Puts of one id exactly one
//     writes.
//   - Consume is one UPDATE … SET consumed = true WHERE id = $1 AND NOT
//     consumed AND expires > $now RETURNING the record: concurrent
//     Consumes on any instance wait for the row lock, and all but one then
//     find the row consumed (stepup.ErrConsumed).
//   - Reserve takes a transaction-level advisory lock per user
//     (pg_advisory_xact_lock on a hash of the user id) and, in the same
//     transaction, counts the user's and the session's live slots and
//     inserts the new one only when both are below their caps. Both go in
//     one round trip (a pgx batch, which PostgreSQL runs as one implicit
//     transaction); the lock is released when it commits. The lock's key
//     is a 64-bit hash in the database's one advisory-lock space: a key
//     that collides with another user's, or with a lock of the
//     application's own, only makes one wait for the other.
//   - Pass (stepup.PassCounter: a passed challenge's slot) sends the same
//     lock and count, then deletes the slots it replaces only if the new
//     one was counted, in the same batch and transaction; GetMany
//     (stepup.MultiGetter: a callback's park and spent mark) is one SELECT.
//     A browser challenge flow takes 7 round trips.
//
// Expiry is decided by the Store's clock (see Clock), passed with every
// statement, never by the database's now(). Records read back are decoded
// as untrusted (stepup.UnmarshalRecord); a row whose record names another
// id, or whose record has expired, is never returned.
//
// When the database is down, slow (see Timeout) or answers errors, every
// method returns an error that starts with "pgstore: " and names the
// operation and the cause; the guard then fails closed (503 with
// Retry-After) and writes nothing half-way: a park stays pending and
// completes once the database is back. A Consume whose answer is lost
// (the connection breaks after the commit) leaves the record consumed: the
// request it parked does not run, rather than run twice.
//
// # Expired rows
//
// Expired rows are never read as live, and are deleted in bounded batches:
// every CleanupEvery-th Put (default 32) runs one statement that deletes
// up to 256 expired rows of each table, found through the expiry indexes
// (oldest first, FOR UPDATE SKIP LOCKED, so that it never waits for a
// request or another cleanup) and removed by ctid. No request scans a
// table. Store.Cleanup deletes every expired row in such batches, for an
// application that turns the Puts' batches off.
//
// # No reserve inside the tables
//
// A bounded stepup.Store keeps a reserve so that, when it is full, it
// refuses new challenges but never the callback of a user who passed one
// (MemoryStore counts its own memory; redisstore watches Redis's
// maxmemory). A PostgreSQL table has no such bound to keep a reserve
// under: it grows on disk, and nothing is ever evicted from it. What it
// holds is bounded by the challenge caps, which this Store counts across
// instances (MaxChallengesPerUser challenges per user and ParkTTL, each
// with the few records that follow it), and by what the cleanup deletes.
// The one way it fills is a disk out of space, and then PostgreSQL
// refuses every write alike, a Consume too: a reserve kept by row counts
// could not save a callback from that. The Store answers it with
// stepup.ErrStoreFull (SQLSTATE 53100, a 503); keep disk headroom and
// monitor it as for any table the application needs.
//
// # Running it
//
// Instances must share the database (and the search_path the tables are
// in) and the session keys (stepup.Config.Sessions); their clocks should
// agree to well within a second. Use the primary for every call: a read
// from a replica may miss a park or a consumed mark written a moment
// before. With synchronous_commit off, or an asynchronous replica promoted
// after a crash, the database can lose a Consume it acknowledged, and a
// replayed request could run twice; keep synchronous_commit on (the
// default) and promote only replicas that were synchronous if that must
// never happen.
package pgstore
