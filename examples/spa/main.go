// Command spa is the smallest front-end integration of stepup with
// Authsignal's browser SDK (@authsignal/browser): a page whose script calls
// a JSON API; when the guard answers 401 with a challenge URL, the script
// launches it with authsignal.launch(url, {mode: "popup"}) (or "window"),
// and resends the same request with the token in the Step-Up-Token header.
//
//	go run ./examples/spa
//
// Signing in goes the same way (MFA at sign-in, guard.SignIn): the
// password to POST /api/signin, a 401 challenge, the SDK's popup, the same
// request again with the token; the login session starts then.
//
// It starts an Authsignal emulator in-process, on another site than the
// application (localhost against 127.0.0.1), as Authsignal's pre-built UI
// is in production: the challenge runs in a cross-site iframe. Transfers
// over 100 need a challenge, and so does every sign-in; the one-time code
// is shown on the page.
package main

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/examples/internal/authsignalbrowser"
)

//go:embed static
var staticFS embed.FS

// rules challenge transfers over 100, and every sign-in.
const rules = `actions:
  transfer:
    default: ALLOW
    rules:
      - {id: over-100, when: {field: custom.amount, op: gt, value: 100}, state: CHALLENGE_REQUIRED}
  signIn:
    default: CHALLENGE_REQUIRED
`

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address of the application")
	emuAddr := flag.String("emulator-addr", "127.0.0.1:8797", "listen address of the emulator (reached as localhost)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, *addr, *emuAddr); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, addr, emuAddr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	emuLn, err := net.Listen("tcp", emuAddr)
	if err != nil {
		ln.Close()
		return err
	}
	s, err := start(ln, emuLn, log.Printf)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Printf("Open %s (the challenge page is on %s)\n", s.AppURL, s.EmulatorURL)
	<-ctx.Done()
	return nil
}

// servers are the application and the emulator, each on its listener.
type servers struct {
	AppURL      string // http://127.0.0.1:port
	EmulatorURL string // http://localhost:port: another site than AppURL
	Emulator    *emulator.Emulator
	App         *app
	srvs        []*http.Server
}

// start serves the application on ln and the emulator on emuLn.
func start(ln, emuLn net.Listener, logf func(string, ...any)) (*servers, error) {
	s := &servers{
		AppURL:      "http://" + ln.Addr().String(),
		EmulatorURL: "http://localhost:" + strconv.Itoa(emuLn.Addr().(*net.TCPAddr).Port),
	}
	r, err := emulator.ParseRules([]byte(rules))
	if err != nil {
		return nil, err
	}
	s.Emulator, err = emulator.NewHandler(emulator.Config{
		Rules:      r,
		Users:      []emulator.User{{ID: "alice", Email: "alice@example.com"}},
		DevMode:    true,
		PublicURL:  s.EmulatorURL,
		AppOrigins: []string{s.AppURL}, // the application frames the page in popup mode
		Logf:       logf,
	})
	if err != nil {
		return nil, err
	}
	s.App, err = newApp(s.AppURL, s.EmulatorURL)
	if err != nil {
		return nil, err
	}
	for _, p := range []struct {
		ln net.Listener
		h  http.Handler
	}{{ln, s.App}, {emuLn, s.Emulator}} {
		srv := &http.Server{Handler: p.h, ReadHeaderTimeout: 10 * time.Second}
		s.srvs = append(s.srvs, srv)
		go func() {
			if err := srv.Serve(p.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				logf("spa: %v", err)
			}
		}()
	}
	return s, nil
}

// Close stops both servers.
func (s *servers) Close() {
	for _, srv := range s.srvs {
		srv.Close()
	}
}

// app is the application: a page, its script, the SDK, and a guarded
// JSON API.
type app struct {
	http.Handler
	Transfers atomic.Int64 // how many times the transfer handler ran
	SignIns   atomic.Int64 // how many login sessions started
	guard     *stepup.Guard
	sessions  *sessions.CookieStore // the application's login session
}

func newApp(appURL, emulatorURL string) (*app, error) {
	a := &app{sessions: sessions.NewCookieStore(securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32))}
	a.sessions.Options.HttpOnly, a.sessions.Options.SameSite = true, http.SameSiteLaxMode
	guard, err := stepup.New(stepup.Config{
		Provider: authsignal.NewClient(emulator.DefaultSecret, authsignal.WithBaseURL(emulatorURL+"/v1")),
		Sessions: sessions.NewCookieStore(securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32)),
		UserID:   func(*http.Request) (string, error) { return "alice", nil }, // your authentication here
		Policies: []stepup.Policy{{Method: http.MethodPost, Route: "/api/transfer", Action: "transfer",
			Attributes: []stepup.Attribute{{Name: "amount", From: stepup.FromJSON, Key: "amount", Type: stepup.TypeNumber}}}},
		CallbackURL:      appURL + "/stepup/callback",
		ChallengeOrigins: []string{emulatorURL},
		SignIn:           &stepup.SignIn{Complete: a.startSession},
	})
	if err != nil {
		return nil, err
	}
	a.guard = guard
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", http.FileServerFS(static))
	mux.Handle("GET /app.js", http.FileServerFS(static))
	mux.Handle("GET /style.css", http.FileServerFS(static))
	mux.Handle("GET /authsignal-browser.js", authsignalbrowser.Handler())
	mux.HandleFunc("POST /api/transfer", a.transfer)
	mux.HandleFunc("POST /api/signin", a.signIn)
	handler := guard.Middleware(mux)
	mux.Handle("GET /stepup/callback", guard.Callback(handler))
	if err := guard.CheckServeMux(mux); err != nil {
		return nil, err
	}
	// The page may frame the challenge page (popup mode) and nothing else;
	// the SDK's popup style is allowed by its hash.
	csp := "default-src 'none'; script-src 'self'; style-src 'self' " + authsignalbrowser.StyleHash +
		"; frame-src " + emulatorURL + "; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	// CSRF in front of the guard: cross-site POSTs never reach it.
	protected := http.NewCrossOriginProtection().Handler(handler)
	a.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", csp)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		protected.ServeHTTP(w, r)
	})
	return a, nil
}

// transfer is the protected handler: it runs once per verified request.
func (a *app) transfer(w http.ResponseWriter, r *http.Request) {
	var t struct {
		Amount float64 `json:"amount"`
		To     string  `json:"to"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&t); err != nil || t.Amount <= 0 || strings.TrimSpace(t.To) == "" {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "bad_request", "message": `send {"amount": n, "to": "name"}`})
		return
	}
	a.Transfers.Add(1)
	how := "without a challenge"
	if v, ok := stepup.VerificationFrom(r.Context()); ok && v.How != stepup.HowAllow {
		how = "after verification (" + string(v.How) + ")"
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"message": fmt.Sprintf("Sent %.2f to %s %s.", t.Amount, t.To, how)})
}

// signIn checks the password, then hands over to the guard, which answers:
// a 401 challenge, then, for the same request with the token, 204 once
// startSession ran.
func (a *app) signIn(w http.ResponseWriter, r *http.Request) {
	var in struct{ User, Password string }
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<10)).Decode(&in); err != nil ||
		in.User != "alice" || in.Password != "alice-password" { // your password check here
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": "wrong_password", "message": "wrong user name or password"})
		return
	}
	a.guard.SignIn(w, r, in.User)
}

// startSession is SignIn.Complete: a new login session for user.
func (a *app) startSession(w http.ResponseWriter, r *http.Request, user string) error {
	s := sessions.NewSession(a.sessions, "spa")
	opts := *a.sessions.Options
	s.Options, s.IsNew = &opts, true
	s.Values["user"] = user
	if err := s.Save(r, w); err != nil {
		return err
	}
	a.SignIns.Add(1)
	return nil
}
