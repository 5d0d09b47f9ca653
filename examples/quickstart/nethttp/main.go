// Command nethttp is the smallest stepup program: a ServeMux whose transfer
// route needs a step-up. Run the Authsignal emulator beside it (from the
// repository's root), then open http://127.0.0.1:8080 and send a transfer:
//
//	go run ./cmd/authsignal-emulator            # dev mode: every action is challenged
//	go run ./examples/quickstart/nethttp
//
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

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
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

func newApp(addr string, getenv func(string) string) (http.Handler, error) {
	apiURL := cmp.Or(getenv("AUTHSIGNAL_API_URL"), "http://127.0.0.1:8787/v1")
	key, err := base64.StdEncoding.DecodeString(getenv("STEPUP_COOKIE_KEY")) // openssl rand -base64 32
	if err != nil {
		return nil, fmt.Errorf("STEPUP_COOKIE_KEY: %w", err)
	}
	if len(key) == 0 {
		key = make([]byte, 32) // none set: a new key per run, fine for trying it out
		rand.Read(key)
	}
	guard, err := stepup.New(stepup.Config{
		Provider:         authsignal.NewClient(cmp.Or(getenv("AUTHSIGNAL_SECRET"), "emulator-secret"), authsignal.WithBaseURL(apiURL)),
		CookieKeys:       [][]byte{key}, // the guard seals its own cookie
		UserID:           currentUser,
		SessionID:        sessionID, // counts challenges per login session
		CallbackURL:      "http://" + addr + "/stepup/callback",
		ChallengeOrigins: []string{strings.TrimSuffix(apiURL, "/v1")}, // the emulator's page; omit for Authsignal
		Policies: []stepup.Policy{
			{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
				Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
		},
	})
	if err != nil {
		return nil, err
	}
	// Fail at start-up on a wrong key or an Authsignal (here, the emulator) that does not answer.
	if err := guard.CheckProvider(context.Background()); err != nil {
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
