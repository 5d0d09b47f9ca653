// Command gin is the gin quick start: a gin engine whose transfer route needs
// a step-up. Run the Authsignal emulator beside it (from the repository's
// root), then open http://127.0.0.1:8080 and send a transfer:
//
//	go run ./cmd/authsignal-emulator            # dev mode: every action is challenged
//	go run ./examples/quickstart/gin
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

	"github.com/gin-gonic/gin"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupgin"
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

func home(w http.ResponseWriter, r *http.Request, action string, transfers int64) {
	if sessionID(r) == "" {
		http.SetCookie(w, &http.Cookie{Name: "session", Value: rand.Text(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<p>Transfers made: %d</p><form method="post" action="%s">Amount <input name="amount" value="5000"> <button>Transfer</button></form>`, transfers, action)
}

// logPaths logs each request's method, path and status but never its query
// string, which holds the token on the callback (gin.Logger prints it).
func logPaths(c *gin.Context) {
	c.Next()
	log.Printf("%s %s %d", c.Request.Method, c.Request.URL.Path, c.Writer.Status())
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
	guard, err := newGuard(addr, getenv, stepup.Config{
		Policies: []stepup.Policy{
			{Method: http.MethodPost, Route: "/accounts/:id/transfer", Action: "transfer",
				Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
		},
	})
	if err != nil {
		return nil, err
	}
	var transfers atomic.Int64
	engine := gin.New()
	engine.Use(stepupgin.PreserveBody(guard)) // first: keep the exact body, though CSRF may read the form
	engine.Use(logPaths)                      // your authentication and CSRF go here too, before the guard
	// The guard, before the routes: gin gives a route only earlier middleware (Use refuses to come later).
	if err := stepupgin.Use(guard, engine); err != nil {
		return nil, err
	}
	engine.GET("/", func(c *gin.Context) { home(c.Writer, c.Request, "/accounts/1/transfer", transfers.Load()) })
	engine.POST("/accounts/:id/transfer", func(c *gin.Context) {
		v, _ := stepup.VerificationFrom(c.Request.Context())
		c.String(http.StatusOK, "transfer %d: %s sent from account %s (step-up: %s)\n",
			transfers.Add(1), c.PostForm("amount"), c.Param("id"), v.How)
	})
	engine.GET("/stepup/callback", stepupgin.Callback(guard, engine)) // replays through the whole engine
	// A policy naming no route of the engine is an error.
	if err := stepupgin.CheckRoutes(guard, engine); err != nil {
		return nil, err
	}
	return engine, nil
}
