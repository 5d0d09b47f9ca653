package redisstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/gorilla/sessions"
	"github.com/redis/go-redis/v9"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

// Every instance of the application builds its guard on the same Redis,
// with the same session keys and the same record keys (the guard seals
// what it keeps in Redis): parks, spent tokens, passes, grants and the
// challenge caps are then shared by all of them.
func Example() {
	mr := miniredis.NewMiniRedis() // stands in for your Redis here
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()

	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()}) // e.g. redis.ParseURL(os.Getenv("REDIS_URL"))
	defer rdb.Close()
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("your-secret-key"),
		Sessions:    sessions.NewCookieStore([]byte("a 32-byte hash key shared by all")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil }, // your login here
		CallbackURL: "https://bank.example/stepup/callback",
		Store:       redisstore.New(rdb, redisstore.Prefix("bank:stepup:")),
		RecordKeys:  [][]byte{[]byte("a 32-byte record key shared by all")}, // e.g. from your secret store
	})
	fmt.Println(guard != nil, err)
	// Output: true <nil>
}

// Of two instances consuming the same parked request, one wins.
func ExampleStore_Consume() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	instanceA, instanceB := redisstore.New(rdb), redisstore.New(rdb)

	now := time.Now()
	err := instanceA.Put(ctx, &stepup.Record{ID: "park-1", Kind: stepup.KindPark, UserID: "alice",
		Method: http.MethodPost, Path: "/transfer", Body: []byte("amount=5000"), Created: now, Expires: now.Add(10 * time.Minute)})
	if err != nil {
		log.Fatal(err)
	}
	rec, err := instanceB.Consume(ctx, "park-1")
	fmt.Println(string(rec.Body), err)
	_, err = instanceA.Consume(ctx, "park-1")
	fmt.Println(errors.Is(err, stepup.ErrConsumed))
	// Output:
	// amount=5000 <nil>
	// true
}

// The challenge caps count across instances: with a cap of two per user,
// the third challenge is refused whichever instance asks.
func ExampleStore_Reserve() {
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	ctx := context.Background()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	instances := []*redisstore.Store{redisstore.New(rdb), redisstore.New(rdb)}

	at := time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		slot := stepup.Slot{ID: fmt.Sprint("challenge-", i), User: "alice", Session: fmt.Sprint("session-", i),
			At: at.Add(time.Duration(i) * time.Minute), Expires: at.Add(time.Duration(i)*time.Minute + 10*time.Minute)}
		wait, err := instances[i%2].Reserve(ctx, slot, 2, 1)
		fmt.Println(i, err, wait)
	}
	// Output:
	// 0 <nil> 0s
	// 1 <nil> 0s
	// 2 stepup: too many challenges 8m0s
}

// A durable store answers a Consume only once a replica has it, so that a
// failover cannot lose it and let the parked request run twice. Here the
// Redis has no replica: the Consume is an error (the guard answers 503
// and runs nothing).
func ExampleDurable() {
	mr := miniredis.NewMiniRedis() // a primary without replicas
	if err := mr.Start(); err != nil {
		log.Fatal(err)
	}
	defer mr.Close()
	ctx := context.Background()
	// In production: redis.NewFailoverClient(&redis.FailoverOptions{MasterName: "mymaster",
	// SentinelAddrs: sentinels}), one replica, and Durable(1, time.Second).
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	store := redisstore.New(rdb, redisstore.Durable(1, 100*time.Millisecond))

	now := time.Now()
	err := store.Put(ctx, &stepup.Record{ID: "park-1", Kind: stepup.KindPark, UserID: "alice",
		Method: http.MethodPost, Path: "/transfer", Body: []byte("amount=5000"), Created: now, Expires: now.Add(10 * time.Minute)})
	fmt.Println("park:", err) // a new challenge does not wait
	_, err = store.Consume(ctx, "park-1")
	fmt.Println(errors.Is(err, redisstore.ErrNotReplicated))
	// Output:
	// park: <nil>
	// true
}
