// Package redisstore keeps stepup's records in Redis, so that several
// instances of an application behind a load balancer share them: a
// request parked on one instance is replayed by whichever instance the
// callback reaches, exactly once; a token spent, a pass or a Remember grant
// given on one instance is seen by all; and the challenge caps
// (stepup.Config.MaxChallengesPerUser and MaxChallengesPerSession) count
// across all of them, because the Store is also a stepup.Counter.
//
//	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
//	guard, err := stepup.New(stepup.Config{
//		Store:      redisstore.New(rdb),
//		RecordKeys: [][]byte{recordKey}, // 32 random bytes, the same on every instance
//		// Provider, Sessions, UserID, CallbackURL, Policies as usual
//	})
//
// Any go-redis v9 UniversalClient works: a single server, Sentinel
// (redis.NewFailoverClient) or Cluster (redis.NewClusterClient). Every
// state change that must happen once is one atomic Redis operation: Put
// writes only when no live record has the id, Consume moves a record from
// pending to consumed for exactly one caller, and Reserve checks both caps
// and counts a challenge in one script, in the slot's bucket; Release (a
// challenge passed, or none opened) gives it back for every instance. The keys that a script uses
// together share a hash tag, so the scripts run on Cluster. Records and
// counted challenges expire in Redis on their own. Record bytes read back
// are decoded as untrusted (stepup.UnmarshalRecord).
//
// When Redis is down, slow (see Timeout) or answers errors, every method
// returns an error that starts with "redisstore: " and names the
// operation and the cause; the guard then stops only what needs Redis: a
// request Authsignal allows still runs, while a challenge, a callback, a
// token retry, a pass or a grant answers 503 with Retry-After, and nothing
// is written half-way: a park stays pending and completes once Redis is
// back, if Redis kept it.
//
// The store saves the guard round trips (docs/stores.md, "Round trips"):
// it is a stepup.Spender (the spent token and the park's Consume in one
// script), a stepup.MultiGetter (a callback's reads in one pipeline) and a
// stepup.PassCounter (a passed challenge's slot moved in one script): a
// browser challenge flow takes 6 round trips. A type that embeds *Store to
// change Put, Get or Consume must implement Spend and GetMany too, or the
// guard's calls go around it. On Cluster the spent token and its park are
// in different slots: Spend is then a Put and a Consume (two round trips),
// the Consume still deciding which of concurrent callbacks runs.
//
// Run Redis so that it keeps what it acknowledged:
//   - maxmemory with maxmemory-policy noeviction: an evicted park or pass
//     is a user who has to start again. Past 7/8 of maxmemory the store
//     refuses new challenges (stepup.ErrStoreFull, a 503) and keeps the
//     last eighth for the records that follow a passed challenge, so that
//     a user who passed one can finish; a Redis out of memory refuses
//     every write (ErrStoreFull too).
//   - persistence (appendonly yes) if parks should survive a restart.
//   - reads from the primary: a client that routes reads to replicas
//     (ReadOnly, RouteByLatency, RouteRandomly) may see a park or pass a
//     moment late, and the user has to start again. Exactly-once does not
//     depend on it: Put and Consume always run on the primary.
//   - with replicas, a failover can lose the writes the old primary had
//     not replicated yet, among them a Consume: the promoted replica still
//     holds the park as pending, and the callback replayed on it runs the
//     request a second time (TestFailoverLosesConsume shows it). Durable
//     closes that.
//
// # Exactly once through a failover
//
// With Durable(replicas, timeout), every state change that must happen
// once — a Consume, the spend of a token, a kept answer, a pass, a
// Remember grant, a Delete — is sent with a WAIT in one pipeline on the
// primary's connection, and returns success only when replicas replicas
// have it. A failover promotes the most up-to-date replica it can reach,
// so a write acknowledged by every replica a Sentinel (or Cluster) could
// promote survives the failover; use Durable(n, …) with n the number of
// replicas, or n of them and replica-priority 0 on the others. When the
// acknowledgement does not come in time the write is an error wrapping
// ErrNotReplicated, and the guard does what it does when Redis fails:
// 503 with Retry-After, nothing replayed, the spent token given back. The
// park is then in one of two states, and neither runs the request twice:
//   - the primary failed over before replicating the Consume: the new
//     primary holds the park pending, and the user's retry of the
//     callback completes it, once;
//   - the primary survived (or a replica had the Consume after all): the
//     park is consumed and was never run; a retry is refused as used and
//     the user starts again. The request ran zero times: safely ended, not
//     completable.
//
// Without a replica that can acknowledge (all replicas down, or a lone
// primary after a failover until a replica rejoins) every such write is
// a 503: Durable trades availability for at-most-once, as it must.
// New challenges and the challenge counter do not wait: a park lost in a
// failover makes the user start again, a lost count lets one challenge
// more through the caps, and neither runs anything twice.
//
// WAIT rather than WAITAOF: a failover needs the write in the promoted
// replica's memory, which WAIT confirms; WAITAOF (Redis 7.2 and later)
// also waits for the replicas' fsync, which matters only if every copy
// can lose power at once, and costs a disk sync per write.
//
// The cost is the replication round trip inside each such write, not one
// more client round trip: three writes of a browser flow wait (spent
// token, Consume, kept answer). On the loopback with one replica, on a
// loaded two-core machine, a Consume took 0.17 ms without and 0.28 ms with
// Durable, a whole challenge flow 1.4 ms without and 2.3 ms with (medians;
// BENCHMARKS.md). Durable writes are bounded by Timeout plus the WAIT's
// timeout; the client's ReadTimeout must exceed the WAIT's timeout.
//
// On Cluster, Durable sends the pipeline to the master of the record's
// slot (ClusterClient.MasterForKey) and follows a slot being migrated
// itself (ASK, with ASKING first; MOVED), as go-redis does for the
// commands it routes; the WAIT then counts that master's replicas.
//
// The guard seals every record it keeps in Redis (stepup.Config.RecordKeys):
// Redis holds no parked body, query or header in clear, and a record
// altered there is refused. Instances must share the Redis, the key
// prefix, the session keys (stepup.Config.Sessions or CookieKeys) and the
// record keys, and their clocks should agree to well within a
// second: expiry is decided by the Store's clock (see Clock).
package redisstore
