package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"

	"github.com/stepupkit/stepup"
	stepupecho "github.com/stepupkit/stepup/adapters/stepupecho"
	"github.com/stepupkit/stepup/authsignal"
	"github.com/stepupkit/stepup/authsignal/emulator"
	"github.com/stepupkit/stepup/examples/internal/authsignalbrowser"
	"github.com/stepupkit/stepup/policyfile"
)

//go:embed policies.yaml rules.yaml
var configFS embed.FS

//go:embed templates static
var assetFS embed.FS

const (
	callbackPath = "/stepup/callback"
	sessionName  = "bank"
	sessionTTL   = 8 * time.Hour
	deviceCookie = "bank_device"        // a random id per browser, for Authsignal's "new device" rules
	deviceTTL    = 400 * 24 * time.Hour // as long as browsers keep a cookie
)

// AppConfig configures the demo bank.
type AppConfig struct {
	// PublicURL is the origin browsers use to reach the bank, such as
	// "http://127.0.0.1:8080". The step-up callback URL is built from it,
	// and cookies are Secure when it is https. Required.
	PublicURL string

	// AuthsignalSecret, when set, makes the bank talk to Authsignal (at
	// AuthsignalAPIURL, or in AuthsignalRegion, default US) and start no
	// emulator. Optional.
	AuthsignalSecret string
	AuthsignalAPIURL string
	AuthsignalRegion string

	// EmulatorAddr is where the embedded Authsignal emulator listens when
	// AuthsignalSecret is empty. Optional. Default "127.0.0.1:0".
	EmulatorAddr string

	// PoliciesFile and RulesFile replace the embedded policies.yaml and
	// rules.yaml. Optional.
	PoliciesFile string
	RulesFile    string

	// Store keeps the guard's records. Optional. Default: in memory, for
	// one instance; instances that share a Redis store (and SessionSecret)
	// share parks, spent tokens, grants and challenge caps.
	Store stepup.Store

	// SessionSecret derives the cookie keys; at least 32 bytes. Optional.
	// Default: random keys, so sessions end when the process does.
	SessionSecret string

	// Logger receives request and step-up logs. Optional. Default: none.
	Logger *slog.Logger

	// Now is the clock of the bank, the guard and the emulator. Optional.
	// Default time.Now.
	Now func() time.Time
}

// App is the demo bank: an echo application guarded by stepup, with its
// own in-process Authsignal emulator unless configured for Authsignal.
type App struct {
	cfg      AppConfig
	log      *slog.Logger
	echo     *echo.Echo
	guard    *stepup.Guard
	bank     *bank
	sessions *sessions.CookieStore
	pages    *pages
	events   *eventLog
	metrics  *metrics // the guard's telemetry, served at /metrics
	origins  []string // where the guard may send a browser for a challenge

	emu       *emulator.Emulator
	emuURL    string
	emuSrv    *http.Server
	emuSecret string             // the embedded emulator's API key (tests call its API as an operator would)
	client    *authsignal.Client // the guard's provider: settles reviews (reviews.go)
}

// NewApp builds the bank. Close releases the emulator it may have started.
func NewApp(cfg AppConfig) (*App, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || (public.Scheme != "http" && public.Scheme != "https") || public.Host == "" ||
		strings.Trim(public.Path, "/") != "" || public.RawQuery != "" || public.User != nil {
		return nil, fmt.Errorf("bank: PublicURL %q must be http(s)://host[:port]", cfg.PublicURL)
	}
	cfg.PublicURL = public.Scheme + "://" + public.Host

	a := &App{cfg: cfg, log: cfg.Logger, bank: newBank(demoUsers, cfg.Now), events: &eventLog{now: cfg.Now}}
	if a.pages, err = loadPages(); err != nil {
		return nil, err
	}
	policies, err := a.loadPolicies()
	if err != nil {
		return nil, err
	}
	provider, err := a.provider()
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			a.Close()
		}
	}()

	hashKey, blockKey, guardKey, err := sessionKeys(cfg.SessionSecret)
	if err != nil {
		return nil, err
	}
	a.sessions = sessions.NewCookieStore(hashKey, blockKey)
	a.sessions.Options = &sessions.Options{
		Path:     "/",
		MaxAge:   int(sessionTTL / time.Second),
		HttpOnly: true,
		Secure:   public.Scheme == "https",
		SameSite: http.SameSiteLaxMode, // the callback is a top-level GET from the challenge page
	}
	a.sessions.MaxAge(a.sessions.Options.MaxAge)

	if a.metrics, err = newMetrics(); err != nil {
		return nil, err
	}
	a.client = provider
	gcfg := stepup.Config{
		Provider: provider,
		// The guard seals its own cookie (no gorilla Store): its key is
		// derived from the same secret, for a purpose of its own. The
		// records it keeps in the Store (Redis with -redis) are sealed
		// with keys the guard derives from CookieKeys under a label of
		// their own: every instance sharing the secret opens them.
		CookieKeys: [][]byte{guardKey},
		UserID:     func(r *http.Request) (string, error) { return userFrom(r.Context()), nil },
		// Count challenges per login session, which a client cannot reset
		// without logging in again: a stolen session cannot use up the
		// user's whole allowance and lock the real user out.
		SessionID: func(r *http.Request) string { sid, _ := r.Context().Value(sessionIDKey{}).(string); return sid },
		// The browser's long-lived random id: Authsignal's rules challenge
		// a sign-in from a device it has not seen.
		DeviceID: func(r *http.Request) string { id, _ := r.Context().Value(deviceKey{}).(string); return id },
		// The login: guard.SignIn after the password, the session started
		// by startSession once the second factor is satisfied.
		SignIn:           &stepup.SignIn{Complete: a.startSession, Next: "/dashboard"},
		CallbackURL:      cfg.PublicURL + callbackPath,
		Policies:         policies,
		Store:            cfg.Store,
		ChallengeOrigins: a.origins,
		ErrorHandler:     a.guardError,
		OnEvent:          a.events.add,
		Logger:           cfg.Logger,
		Now:              cfg.Now,
	}
	a.metrics.tel.Instrument(&gcfg) // metrics beside the decisions list
	if a.guard, err = stepup.New(gcfg); err != nil {
		return nil, err
	}
	if err := a.routes(); err != nil {
		return nil, err
	}
	ok = true
	return a, nil
}

// Handler is the bank's HTTP handler.
func (a *App) Handler() http.Handler { return a.echo }

// Emulator is the embedded Authsignal emulator, nil against Authsignal.
func (a *App) Emulator() *emulator.Emulator { return a.emu }

// EmulatorURL is the embedded emulator's base URL, "" against Authsignal.
func (a *App) EmulatorURL() string { return a.emuURL }

// Guard is the step-up guard in front of the bank's routes.
func (a *App) Guard() *stepup.Guard { return a.guard }

// Close stops the embedded emulator. It is safe to call more than once.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var err error
	if a.metrics != nil {
		err = a.metrics.shutdown(ctx)
		a.metrics = nil
	}
	if a.emuSrv == nil {
		return err
	}
	err = errors.Join(err, a.emuSrv.Shutdown(ctx))
	a.emuSrv = nil
	return err
}

func (a *App) loadPolicies() ([]stepup.Policy, error) {
	if a.cfg.PoliciesFile != "" {
		return policyfile.Load(a.cfg.PoliciesFile)
	}
	data, err := configFS.ReadFile("policies.yaml")
	if err != nil {
		return nil, err
	}
	return policyfile.Parse(data)
}

func (a *App) loadRules() (*emulator.Rules, error) {
	if a.cfg.RulesFile != "" {
		return emulator.LoadRules(a.cfg.RulesFile)
	}
	data, err := configFS.ReadFile("rules.yaml")
	if err != nil {
		return nil, err
	}
	return emulator.ParseRules(data)
}

// provider returns the Authsignal client: for Authsignal itself when a
// secret is configured, else for an emulator started here.
func (a *App) provider() (*authsignal.Client, error) {
	if a.cfg.AuthsignalSecret != "" {
		a.origins = []string{"https://authsignal.com", "https://*.authsignal.com"}
		var opts []authsignal.Option
		if a.cfg.AuthsignalRegion != "" {
			opts = append(opts, authsignal.WithRegion(authsignal.Region(a.cfg.AuthsignalRegion)))
		}
		if a.cfg.AuthsignalAPIURL != "" {
			u, err := url.Parse(a.cfg.AuthsignalAPIURL)
			if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				return nil, fmt.Errorf("bank: AUTHSIGNAL_API_URL %q is not an http(s) URL", a.cfg.AuthsignalAPIURL)
			}
			opts = append(opts, authsignal.WithBaseURL(a.cfg.AuthsignalAPIURL))
			// A self-hosted emulator serves its challenge page where its API is.
			a.origins = append(a.origins, u.Scheme+"://"+u.Host)
		}
		return authsignal.NewClient(a.cfg.AuthsignalSecret, opts...), nil
	}

	rules, err := a.loadRules()
	if err != nil {
		return nil, err
	}
	addr := a.cfg.EmulatorAddr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("bank: emulator: %w", err)
	}
	a.emuURL = "http://" + ln.Addr().String()
	if tcp, ok := ln.Addr().(*net.TCPAddr); ok && tcp.IP.IsLoopback() {
		// Browsers refuse passkeys on an IP address (the relying party is
		// a host name): the page is reached as localhost, which is a
		// secure context on plain http. The bank's own origin stays apart.
		a.emuURL = "http://localhost:" + strconv.Itoa(tcp.Port)
	}
	secret := randomHex(32) // a fresh API key per run
	a.emuSecret = secret
	var users []emulator.User
	for _, u := range demoUsers {
		if u.Unenrolled {
			continue // unknown to Authsignal until the bank tracks an action for them
		}
		users = append(users, emulator.User{ID: u.ID, Email: u.Email, Methods: []string{emulator.MethodEmailOTP}})
	}
	a.emu, err = emulator.NewHandler(emulator.Config{
		Secret: secret,
		Rules:  rules,
		Users:  users,
		// An action the rules do not decide is challenged. Users are
		// enrolled as listed above, not on first sight: a customer with no
		// second factor is unenrolled, as with Authsignal, and the rules
		// send them to enrol (rules.yaml, signIn).
		ChallengeByDefault: true,
		DevMode:            true, // the page shows the code: nobody has to read an inbox
		PublicURL:          a.emuURL,
		// The dashboard frames the challenge page (the SDK's popup mode),
		// which posts the token to the bank's origin only.
		AppOrigins: []string{a.cfg.PublicURL},
		Now:        a.cfg.Now,
		Logf: func(format string, args ...any) {
			a.log.Info(fmt.Sprintf(format, args...), slog.String("component", "emulator"))
		},
	})
	if err != nil {
		ln.Close()
		return nil, err
	}
	a.emuSrv = &http.Server{Handler: a.emu, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(a.log.Handler(), slog.LevelWarn)}
	go func(srv *http.Server) {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("emulator stopped", slog.String("error", err.Error()))
		}
	}(a.emuSrv)
	a.origins = []string{a.emuURL}
	return authsignal.NewClient(secret, authsignal.WithBaseURL(a.emuURL+"/v1")), nil
}

// routes builds the echo application. The order matters:
//
//	Pre:  PreserveBody   the guard can park exact bodies that CSRF read first
//	Use:  log, recover, security headers, session → user, CSRF, role check,
//	      transfer check, then the guard
func (a *App) routes() error {
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.IPExtractor = echo.ExtractIPDirect()
	e.HTTPErrorHandler = a.httpError
	a.echo = e

	e.Pre(stepupecho.PreserveBody(a.guard))
	e.Use(middleware.RequestLoggerWithConfig(middleware.RequestLoggerConfig{
		LogMethod: true, LogURIPath: true, LogStatus: true, LogLatency: true, LogError: true, HandleError: true,
		LogValuesFunc: a.logRequest,
	}))
	e.Use(middleware.Recover())
	e.Use(a.secureHeaders)
	e.Use(a.device)
	e.Use(a.loadUser)
	e.Use(middleware.CSRFWithConfig(middleware.CSRFConfig{
		TokenLookup:    "form:_csrf,header:X-CSRF-Token",
		CookiePath:     "/",
		CookieHTTPOnly: true,
		CookieSecure:   strings.HasPrefix(a.cfg.PublicURL, "https:"),
		CookieSameSite: http.SameSiteLaxMode,
	}))
	e.Use(a.keepCSRF)
	e.Use(a.authorize)
	e.Use(a.checkTransfers) // validate before challenging: transfercheck.go
	e.Use(stepupecho.Middleware(a.guard))

	static, err := fs.Sub(assetFS, "static")
	if err != nil {
		return err
	}
	e.StaticFS("/static", static)
	e.GET("/static/authsignal-browser.js", echo.WrapHandler(authsignalbrowser.Handler()))
	e.GET("/", a.home)
	e.GET("/login", a.loginPage)
	e.POST("/login", a.login)
	e.POST("/logout", a.logout, a.requireLogin)
	e.GET("/dashboard", a.dashboard, a.requireLogin)
	e.POST("/transfer", a.transfer, a.requireLogin)
	e.GET("/transfers/:id", a.transferResult, a.requireLogin)
	e.GET("/settings", a.settings, a.requireLogin)
	e.POST("/settings/email", a.changeEmail, a.requireLogin)
	e.POST("/settings/remembered/revoke", a.revokeGrants, a.requireLogin)
	e.GET("/admin", a.admin, a.requireLogin)
	e.POST("/admin/reviews", a.settleReview, a.requireLogin)
	e.GET("/api/account", a.apiAccount, a.requireLogin)
	e.POST("/api/transfer", a.apiTransfer, a.requireLogin)
	e.GET(callbackPath, stepupecho.Callback(a.guard, e))
	e.GET("/metrics", echo.WrapHandler(a.metrics.handler))

	// A policy that names no route would leave that route open.
	return stepupecho.CheckRoutes(a.guard, e)
}

// logRequest writes one line per request: the path without its query,
// since the callback's query holds a token.
func (a *App) logRequest(c echo.Context, v middleware.RequestLoggerValues) error {
	level := slog.LevelInfo
	attrs := []slog.Attr{
		slog.String("method", v.Method), slog.String("path", v.URIPath),
		slog.Int("status", v.Status), slog.Duration("latency", v.Latency),
	}
	if u := userFrom(c.Request().Context()); u != "" {
		attrs = append(attrs, slog.String("user", u))
	}
	if v.Error != nil {
		level = slog.LevelWarn
		attrs = append(attrs, slog.String("error", v.Error.Error()))
	}
	a.log.LogAttrs(c.Request().Context(), level, "request", attrs...)
	return nil
}

// secureHeaders sets the headers every page carries. The form-action
// source list names the challenge origins: a form POST that needs a
// step-up is redirected there, and browsers apply form-action to it. The
// dashboard frames the challenge page (frame-src) in the browser SDK's
// popup mode, whose <style> element is allowed by its hash.
func (a *App) secureHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	origins := strings.Join(a.origins, " ")
	csp := "default-src 'none'; script-src 'self'; style-src 'self' " + authsignalbrowser.StyleHash +
		"; img-src 'self'; connect-src 'self'; frame-src " + origins + "; form-action 'self' " + origins +
		"; frame-ancestors 'none'; base-uri 'none'"
	https := strings.HasPrefix(a.cfg.PublicURL, "https:")
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "same-origin")
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			h.Set("Cache-Control", "no-store")
		}
		if https {
			h.Set("Strict-Transport-Security", "max-age=63072000")
		}
		return next(c)
	}
}

type userKey struct{}

// csrfKey holds the request's CSRF token, for the pages that are written
// outside echo's context: the error pages keep the navigation (its
// logout form carries the token).
type csrfKey struct{}

// keepCSRF copies the token echo's CSRF middleware set into the request's
// context.
func (a *App) keepCSRF(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if tok, _ := c.Get("csrf").(string); tok != "" {
			r := c.Request()
			c.SetRequest(r.WithContext(context.WithValue(r.Context(), csrfKey{}, tok)))
		}
		return next(c)
	}
}

// deviceKey holds the browser's device id (deviceCookie).
type deviceKey struct{}

// device gives every browser a long-lived random id (deviceCookie), which
// the guard sends to Authsignal as the device id.
func (a *App) device(next echo.HandlerFunc) echo.HandlerFunc {
	https := strings.HasPrefix(a.cfg.PublicURL, "https:")
	return func(c echo.Context) error {
		r := c.Request()
		id := ""
		if ck, err := r.Cookie(deviceCookie); err == nil && len(ck.Value) == 32 && isHex(ck.Value) {
			id = ck.Value
		} else {
			id = randomHex(16)
			c.SetCookie(&http.Cookie{Name: deviceCookie, Value: id, Path: "/", MaxAge: int(deviceTTL / time.Second),
				HttpOnly: true, Secure: https, SameSite: http.SameSiteLaxMode})
		}
		c.SetRequest(r.WithContext(context.WithValue(r.Context(), deviceKey{}, id)))
		return next(c)
	}
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// sessionIDKey holds the id of the login session, set at login.
type sessionIDKey struct{}

func userFrom(ctx context.Context) string {
	u, _ := ctx.Value(userKey{}).(string)
	return u
}

// loadUser puts the logged-in user, if any, in the request's context.
// A session that does not decode (tampered, old keys) is no session.
func (a *App) loadUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		sess, err := a.sessions.Get(r, sessionName)
		if err == nil {
			if id, _ := sess.Values["user"].(string); id != "" && a.bank.exists(id) {
				sid, _ := sess.Values["sid"].(string)
				ctx := context.WithValue(r.Context(), userKey{}, id)
				c.SetRequest(r.WithContext(context.WithValue(ctx, sessionIDKey{}, sid)))
			}
		}
		return next(c)
	}
}

// staffRoutes are the route patterns (echo's c.Path(), any method) that
// only the bank's staff may use.
var staffRoutes = map[string]bool{"/admin": true, "/admin/reviews": true}

// authorize refuses a customer the staff routes. It runs before the guard,
// not as route middleware after it: whether this user may have the page at
// all is not something a step-up can change, so a customer must not be
// asked for one. Asking would track an action and open a challenge for
// nothing, spend the user's challenge allowance, and tell them that the
// page is there and sensitive. The replay after a staff member's challenge
// comes through here again, so a role removed meanwhile is refused too.
func (a *App) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if !staffRoutes[c.Path()] {
			return next(c)
		}
		user := userFrom(c.Request().Context())
		switch {
		case user == "":
			return echo.NewHTTPError(http.StatusUnauthorized, "Please log in first.")
		case !a.bank.isAdmin(user):
			return echo.NewHTTPError(http.StatusForbidden, "The admin area is for the bank's staff.")
		}
		return next(c)
	}
}

func (a *App) requireLogin(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if userFrom(c.Request().Context()) == "" {
			return echo.NewHTTPError(http.StatusUnauthorized, "Please log in first.")
		}
		return next(c)
	}
}

func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }

// httpError answers every error a handler or middleware returns: a JSON
// body under /api/, else the bank's error page; a browser that is not
// logged in goes to the login page.
func (a *App) httpError(err error, c echo.Context) {
	if c.Response().Committed {
		return
	}
	status, code, msg := http.StatusInternalServerError, "internal_error", "Something went wrong. Nothing was done."
	var he *echo.HTTPError
	var se *stepup.Error
	switch {
	case errors.As(err, &se):
		status, code, msg = se.Status, se.Code, se.Message
	case errors.As(err, &he):
		status, code = he.Code, strings.ReplaceAll(strings.ToLower(http.StatusText(he.Code)), " ", "_")
		msg = fmt.Sprint(he.Message)
		if errors.Is(err, middleware.ErrCSRFInvalid) || strings.Contains(msg, "csrf") {
			code, msg = "csrf", "This form has expired or did not come from this site. Reload the page and try again."
		}
	}
	r := c.Request()
	if status == http.StatusUnauthorized && !isAPI(r) {
		_ = c.Redirect(http.StatusSeeOther, "/login")
		return
	}
	a.writeError(c.Response(), r, status, code, msg)
}

// guardError answers the guard's refusals outside echo's handler chain
// (the callback): the same pages and JSON as httpError.
func (a *App) guardError(w http.ResponseWriter, r *http.Request, err error) {
	var se *stepup.Error
	if !errors.As(err, &se) {
		a.writeError(w, r, http.StatusInternalServerError, "internal_error", "Something went wrong. Nothing was done.")
		return
	}
	a.writeError(w, r, se.Status, se.Code, se.Message)
}

func (a *App) writeError(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	if isAPI(r) {
		writeJSON(w, status, map[string]string{"error": code, "message": msg})
		return
	}
	title := http.StatusText(status)
	if code == "step_up_failed" || code == "not_judged" || code == "already_used" || code == "expired" {
		title = "Verification not completed"
	}
	user := userFrom(r.Context())
	csrf, _ := r.Context().Value(csrfKey{}).(string)
	a.pages.render(w, status, "error.html", pageData{Title: title, User: user, Admin: a.bank.isAdmin(user), CSRF: csrf,
		Error: msg, Code: code})
}

// sessionKeys derives the cookie keys from secret, or makes random ones:
// the login session's hash and block keys, and the guard's cookie key.
func sessionKeys(secret string) (hashKey, blockKey, guardKey []byte, err error) {
	if secret == "" {
		return securecookie.GenerateRandomKey(64), securecookie.GenerateRandomKey(32), securecookie.GenerateRandomKey(32), nil
	}
	if len(secret) < 32 {
		return nil, nil, nil, errors.New("bank: the session secret must be at least 32 bytes")
	}
	derive := func(h func() hash.Hash, purpose string) []byte {
		m := hmac.New(h, []byte(secret))
		m.Write([]byte(purpose))
		return m.Sum(nil)
	}
	return derive(sha512.New, "bank session hash key"), derive(sha256.New, "bank session block key"),
		derive(sha256.New, "bank stepup cookie key"), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
