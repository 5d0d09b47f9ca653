package pgstore_test

import (
	"context"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/sessions"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

// Every instance of the application builds its guard on the same database
// (and the same session keys): parks, spent tokens, passes, grants and the
// challenge caps are then shared by all of them. Migrate creates the
// tables once; any instance may run it at start.
func Example() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL")) // postgres://user:password@host:5432/app
	if err != nil {
		log.Fatal(err)
	}
	defer pool.Close()
	if err := pgstore.Migrate(ctx, pool); err != nil {
		log.Fatal(err)
	}
	guard, err := stepup.New(stepup.Config{
		Provider:    authsignal.NewClient("your-secret-key"),
		Sessions:    sessions.NewCookieStore([]byte("a 32-byte hash key shared by all")),
		UserID:      func(*http.Request) (string, error) { return "alice", nil }, // your login here
		CallbackURL: "https://bank.example/stepup/callback",
		Store:       pgstore.New(pool),
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = guard
}

// An application that would rather not spend a Put's time on deleting
// expired rows turns that off and cleans up from a ticker of its own, on
// any instance.
func ExampleStore_Cleanup() {
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, os.Getenv("DATABASE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	store := pgstore.New(pool, pgstore.CleanupEvery(0))
	go func() {
		for range time.Tick(time.Minute) {
			if _, err := store.Cleanup(ctx); err != nil {
				log.Print(err)
			}
		}
	}()
}
