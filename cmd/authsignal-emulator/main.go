// Command authsignal-emulator runs a local Authsignal Server API: the REST
// API under /v1 and the hosted challenge page, for development and
// end-to-end tests. See package github.com/stepupkit/stepup/authsignal/emulator.
//
// Usage:
//
//	authsignal-emulator [-addr 127.0.0.1:8787] [-secret KEY] [-rules rules.yaml]
//	                    [-faithful] [-dev=true] [-public-url URL] [-auto-enroll]
//	                    [-user id:email]... [-app-origin http://127.0.0.1:8080]...
//
// By default it runs in development mode, so that an application wired to it
// sees a challenge at once: every user is enrolled with email OTP on first
// sight, and without a rules file every action is CHALLENGE_REQUIRED (a rules
// file decides which are). -faithful behaves as an Authsignal tenant does:
// without rules every action is ALLOW, and a challenge for a user with no
// authenticator becomes ALLOW (the log says why), unless the user was
// enrolled with -user or -auto-enroll is given.
//
// The secret defaults to $AUTHSIGNAL_SECRET, else "emulator-secret". Point
// the client at the printed API URL:
//
//	authsignal.NewClient(secret, authsignal.WithBaseURL("http://127.0.0.1:8787/v1"))
//
// An application that launches the hosted page with Authsignal's browser
// SDK in popup mode (an iframe) names its origin with -app-origin: only those
// origins may frame the page, and the page posts the token only to them and
// to the origin of the track's redirectUrl. Without it the page cannot be
// framed; window and redirect modes work.
//
// The hosted page runs email and SMS codes, authenticator apps (TOTP) and
// passkeys; a rules file's methods: limits an action to some of them.
// Browsers take passkeys only from a page at a host name (localhost), not
// an IP address: for them, run with -public-url http://localhost:8787.
//
// SIGINT or SIGTERM shuts it down gracefully. It never logs the secret or
// tokens; one-time codes are logged only with -dev.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/stepupkit/stepup/authsignal/emulator"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "authsignal-emulator:", err)
		}
		os.Exit(2)
	}
}

// users is the repeatable -user flag: id:email, enrolled with email OTP.
type users []emulator.User

func (u *users) String() string { return fmt.Sprint(len(*u), " users") }

func (u *users) Set(s string) error {
	id, email, ok := strings.Cut(s, ":")
	if !ok || id == "" || !strings.Contains(email, "@") {
		return fmt.Errorf("want id:email, got %q", s)
	}
	*u = append(*u, emulator.User{ID: id, Email: email, Methods: []string{emulator.MethodEmailOTP}})
	return nil
}

// origins is the repeatable -app-origin flag.
type origins []string

func (o *origins) String() string { return strings.Join(*o, " ") }

func (o *origins) Set(s string) error {
	*o = append(*o, s)
	return nil
}

// modeNote is the banner's line about enrolment.
func modeNote(faithful, autoEnroll bool) string {
	switch {
	case !faithful:
		return "development: every user is enrolled with email OTP on first sight (-faithful to behave as Authsignal does)"
	case autoEnroll:
		return "faithful, with every user enrolled with email OTP (-auto-enroll)"
	}
	return "faithful: only -user users are enrolled; a challenge for anyone else becomes ALLOW, as with Authsignal"
}

// methodsNote is the banner's line about the verification methods.
func methodsNote(base string) string {
	note := "email and SMS codes, authenticator app (TOTP), passkey; an action's methods: in the rules limits them"
	if u, err := url.Parse(base); err == nil && net.ParseIP(u.Hostname()) != nil {
		note += "; passkeys need a host name, not " + u.Hostname() + ": -public-url http://localhost:" + u.Port()
	}
	return note
}

// rulesNote is the banner's line about the rules.
func rulesNote(path string, faithful bool) string {
	switch {
	case path == "" && faithful:
		return "none: every action ALLOW"
	case path == "":
		return "none: every action CHALLENGE_REQUIRED (-rules FILE decides which)"
	case faithful:
		return path
	}
	return path + " (an action it does not decide is CHALLENGE_REQUIRED)"
}

// run parses args, serves until ctx is done, then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("authsignal-emulator", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		addr       = fs.String("addr", "127.0.0.1:8787", "listen address")
		secret     = fs.String("secret", "", `API secret key (default $AUTHSIGNAL_SECRET, else "emulator-secret")`)
		rulesPath  = fs.String("rules", "", "rules file (YAML or JSON); default: every action CHALLENGE_REQUIRED (ALLOW with -faithful)")
		faithful   = fs.Bool("faithful", false, "behave as an Authsignal tenant: no rules means ALLOW, and users are not enrolled on first sight")
		dev        = fs.Bool("dev", true, "show one-time codes on the hosted page and in the log")
		publicURL  = fs.String("public-url", "", "base URL of the challenge links (default http://<listen address>)")
		autoEnroll = fs.Bool("auto-enroll", false, "treat every user as enrolled with email OTP (always so without -faithful)")
		webhookURL = fs.String("webhook-url", "", "deliver a signed action.updated webhook to this URL at every change of an action's state")
		webhookKey = fs.String("webhook-secret", "", "signing secret of the webhooks (default $AUTHSIGNAL_WEBHOOK_SECRET); required with -webhook-url")
		us         users
		apps       origins
	)
	fs.Var(&us, "user", "enrolled user as id:email (repeatable)")
	fs.Var(&apps, "app-origin", "origin of an application that may frame the page in the browser SDK's popup mode, as http(s)://host[:port] (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *secret == "" {
		*secret = getenv("AUTHSIGNAL_SECRET")
	}
	customSecret := *secret != "" && *secret != emulator.DefaultSecret
	if *webhookKey == "" {
		*webhookKey = getenv("AUTHSIGNAL_WEBHOOK_SECRET")
	}
	if *webhookURL != "" && *webhookKey == "" {
		return errors.New("-webhook-url needs -webhook-secret (or $AUTHSIGNAL_WEBHOOK_SECRET)")
	}
	var rules *emulator.Rules
	if *rulesPath != "" {
		var err error
		if rules, err = emulator.LoadRules(*rulesPath); err != nil {
			return err
		}
	}

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	base := *publicURL
	if base == "" {
		host, port, _ := net.SplitHostPort(ln.Addr().String())
		if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
			host = "localhost"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	logger := log.New(stderr, "", log.LstdFlags)
	e, err := emulator.NewHandler(emulator.Config{
		Secret:             *secret,
		Rules:              rules,
		Users:              us,
		AutoEnroll:         *autoEnroll || !*faithful,
		ChallengeByDefault: !*faithful,
		DevMode:            *dev,
		PublicURL:          base,
		AppOrigins:         apps,
		WebhookURL:         *webhookURL,
		WebhookSecret:      *webhookKey,
		Logf:               logger.Printf,
	})
	if err != nil {
		return err
	}

	base = strings.TrimRight(base, "/")
	secretNote := `the default, "` + emulator.DefaultSecret + `"`
	if customSecret {
		secretNote = "custom (not shown)"
	}
	fmt.Fprintf(stdout, "authsignal-emulator listening on %s\n", ln.Addr())
	fmt.Fprintf(stdout, "  API base URL: %s/v1\n", base)
	fmt.Fprintf(stdout, "  secret key:   %s\n", secretNote)
	fmt.Fprintf(stdout, "  mode:         %s\n", modeNote(*faithful, *autoEnroll))
	fmt.Fprintf(stdout, "  rules:        %s\n", rulesNote(*rulesPath, *faithful))
	codes := "shown on the hosted page and in this log (-dev=false hides them)"
	if !*dev {
		codes = "hidden (read them through /v1/__emulator/outbox)"
	}
	fmt.Fprintf(stdout, "  codes:        %s\n", codes)
	framing := "none (popup mode off; window and redirect modes work)"
	if len(apps) > 0 {
		framing = apps.String()
	}
	fmt.Fprintf(stdout, "  app origins:  %s\n", framing)
	fmt.Fprintf(stdout, "  methods:      %s\n", methodsNote(base))

	srv := &http.Server{Handler: e, ReadHeaderTimeout: 10 * time.Second, ErrorLog: logger}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	select {
	case err := <-serveErr:
		return err
	case <-ctx.Done():
	}
	logger.Printf("authsignal-emulator: shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
