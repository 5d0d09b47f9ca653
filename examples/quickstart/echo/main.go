// Command echo is the echo quick start: an echo application, with CSRF
// protection, whose transfer route needs a step-up. Run the Authsignal
// emulator beside it (from the repository's root), then open
// http://127.0.0.1:8080 and send a transfer:
//
//	go run ./cmd/authsignal-emulator            # dev mode: every action is challenged
//	go run ./examples/quickstart/echo
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

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/adapters/stepupecho"
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

func home(c echo.Context, transfers int64) error {
	if sessionID(c.Request()) == "" {
		c.SetCookie(&http.Cookie{Name: "session", Value: rand.Text(), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	}
	return c.HTML(http.StatusOK, fmt.Sprintf(`<p>Transfers made: %d</p><form method="post" action="/transfer">`+
		`<input type="hidden" name="_csrf" value="%s">Amount <input name="amount" value="5000"> <button>Transfer</button></form>`,
		transfers, c.Get("csrf")))
}

// logPaths logs each request's method, path and status but never its query
// string, which holds the token on the callback (middleware.Logger prints it).
var logPaths = middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
	LogMethod: true, LogURIPath: true, LogStatus: true,
	LogValuesFunc: func(c echo.Context, v middleware.RequestLoggerValues) error {
		log.Printf("%s %s %d", v.Method, v.URIPath, v.Status)
		return nil
	},
})

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
			{Method: http.MethodPost, Route: "/transfer", Action: "transfer",
				Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromForm, Key: "amount", Type: stepup.TypeNumber}}},
		},
	})
	if err != nil {
		return nil, err
	}
	var transfers atomic.Int64
	e := echo.New()
	e.Pre(stepupecho.PreserveBody(guard)) // keep the exact body for the guard, though CSRF reads the form first
	e.Use(logPaths)                       // your authentication goes here too, before the guard
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{TokenLookup: "form:_csrf,header:X-CSRF-Token"}))
	e.Use(stepupecho.Middleware(guard)) // the policy table, matched on c.Path()
	e.GET("/", func(c echo.Context) error { return home(c, transfers.Load()) })
	e.POST("/transfer", func(c echo.Context) error {
		v, _ := stepup.VerificationFrom(c.Request().Context())
		return c.String(http.StatusOK, fmt.Sprintf("transfer %d: %s sent (step-up: %s)\n", transfers.Add(1), c.FormValue("amount"), v.How))
	})
	e.GET("/stepup/callback", stepupecho.Callback(guard, e)) // replays through the whole chain, CSRF included
	// A policy naming no route of e is an error.
	if err := stepupecho.CheckRoutes(guard, e); err != nil {
		return nil, err
	}
	return e, nil
}
