// Command redis is the Redis quick start: the net/http quick start with its
// step-up records (parked requests, spent tokens, grants, challenge caps) in
// Redis, shared by every instance of the application. Run Redis and the
// Authsignal emulator beside it (from the repository's root), then open
// http://127.0.0.1:8080 and send a transfer:
//
//	redis-server --port 6379 --save ''
//	go run ./cmd/authsignal-emulator            # dev mode: every action is challenged
//	go run ./examples/quickstart/redis
//
// REDIS_URL (default redis://127.0.0.1:6379/0) says where Redis is.
// AUTHSIGNAL_API_URL and AUTHSIGNAL_SECRET point it elsewhere; STEPUP_COOKIE_KEY
// (openssl rand -base64 32) keeps the guard's cookies valid across restarts.
package main

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

func main() {
	addr := cmp.Or(os.Getenv("ADDR"), "127.0.0.1:8080")
	handler, err := newApp(addr, os.Getenv)
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("open http://%s", addr)
	log.Fatal(http.ListenAndServe(addr, handler))
}

// Your authentication goes here. This stand-in logs everybody in as alice,
// with a login session id in a cookie that the home page sets.
func sessionID(r *http.Request) string {
	if c, err := r.Cookie("session"); err == nil {
		return c.Value
	}
	return ""
}

func currentUser(r *http.Request) (string, error) {
	if sessionID(r) == "" {
		return "", nil // nobody: the guard answers 401
	}
	return "alice", nil
}

func home(w http.ResponseWriter, r *http.Request, transfers int64) {
	if sessionID(r) == "" {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: rand.Text(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<p>Transfers made: %d</p><form method="post" action="/transfer">Amount <input name="amount" value="5000"> <button>Transfer</button></form>`, transfers)
}

// newGuard is the net/http quick start's configuration around cfg's
// Policies (and Store): CookieKeys, SessionID, the stand-in login, the
// emulator's URL and key unless the environment names others, and a
// start-up check that the provider answers and accepts the key.
func newGuard(addr string, getenv func(string) string, cfg stepup.Config) (*stepup.Guard, error) {
	apiURL := cmp.Or(getenv("AUTHSIGNAL_API_URL"), "http://127.0.0.1:8787/v1")
	key, err := base64.StdEncoding.DecodeString(getenv("STEPUP_COOKIE_KEY")) // openssl rand -base64 32
	if err != nil {
		return nil, fmt.Errorf("STEPUP_COOKIE_KEY: %w", err)
	}
	if len(key) == 0 {
		key = make([]byte, 32) // none set: a new key per run, fine for trying it out
		rand.Read(key)
	}
	cfg.Provider = authsignal.NewClient(cmp.Or(getenv("AUTHSIGNAL_SECRET"), "emulator-secret"), authsignal.WithBaseURL(apiURL))
	cfg.CookieKeys = [][]byte{key}
	cfg.UserID, cfg.SessionID = currentUser, sessionID
	cfg.CallbackURL = "http://" + addr + "/stepup/callback"
	cfg.ChallengeOrigins = []string{strings.TrimSuffix(apiURL, "/v1")} // the emulator's page; omit for Authsignal
	guard, err := stepup.New(cfg)
	if err != nil {
		return nil, err
	}
	return guard, guard.CheckProvider(context.Background())
}

// docs/quickstarts.md shows the rest of this file.

func newApp(addr string, getenv func(string) string) (http.Handler, error) {
	opts, err := redis.ParseURL(cmp.Or(getenv("REDIS_URL"), "redis://127.0.0.1:6379/0"))
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	rdb := redis.NewClient(opts) // or a Sentinel or Cluster client: redis.NewUniversalClient
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis at %s: %w", opts.Addr, err)
	}
	guard, err := newGuard(addr, getenv, stepup.Config{
		// Shared by every instance; give them all the same STEPUP_COOKIE_KEY.
		Store: redisstore.New(rdb, redisstore.Prefix("quickstart:stepup:")),
		Policies: []stepup.Policy{
			{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
				Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
		},
	})
	if err != nil {
		return nil, err
	}
	var transfers atomic.Int64
	mux := guard.NewServeMux() // wraps the routes a policy names as they are registered
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { home(w, r, transfers.Load()) })
	mux.HandleFunc("POST /transfer", func(w http.ResponseWriter, r *http.Request) {
		v, _ := stepup.VerificationFrom(r.Context())
		fmt.Fprintf(w, "transfer %d: %s sent (step-up: %s)\n", transfers.Add(1), r.FormValue("amount"), v.How)
	})
	mux.Handle("GET /stepup/callback", guard.Callback(mux)) // replays the transfer once verified
	// A policy naming no route of the mux is an error.
	if err := mux.Check(); err != nil {
		return nil, err
	}
	return mux, nil
}
