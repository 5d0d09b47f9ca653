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
//		Store: redisstore.New(rdb),
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
// operation and the cause; the guard then fails closed (503 with
// Retry-After) and writes nothing half-way: a park stays pending and
// completes once Redis is back, if Redis kept it.
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
//     not replicated yet, among them a Consume: keep failovers manual or
//     rare, or give each application its own primary, if a replayed
//     request must never run twice even then.
//
// Instances must share the Redis, the key prefix and the session keys
// (stepup.Config.Sessions), and their clocks should agree to well within a
// second: expiry is decided by the Store's clock (see Clock).
package redisstore
