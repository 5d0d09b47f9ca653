// Command bank is the stepup demo: a small echo bank whose large
// transfers, email changes and admin area need a step-up through
// Authsignal, or through the Authsignal emulator it starts in-process.
//
//	go run ./examples/bank
//
// Flags and environment:
//
//	-addr           BANK_ADDR            listen address (default 127.0.0.1:8080)
//	-public-url     BANK_PUBLIC_URL      URL browsers use (default http://<addr>)
//	-emulator-addr  BANK_EMULATOR_ADDR   embedded emulator address (default 127.0.0.1:8787)
//	-policies       BANK_POLICIES        policy file (default: the embedded policies.yaml)
//	-rules          BANK_RULES           emulator rules (default: the embedded rules.yaml)
//	-redis          BANK_REDIS_URL       keep step-up records in Redis, redis://[:password@]host:port/db
//	                                     (default: in memory, for one instance)
//	-postgres       BANK_POSTGRES_URL    keep them in PostgreSQL instead, postgres://user:password@host:port/db
//	                                     (the tables are created if missing)
//	                BANK_SESSION_SECRET  derives the cookie keys (default: random per run)
//	                AUTHSIGNAL_SECRET    use Authsignal instead of the emulator
//	                AUTHSIGNAL_API_URL   Authsignal API base URL, e.g. https://api.authsignal.com/v1
//	                AUTHSIGNAL_REGION    us, eu, au or ca (when AUTHSIGNAL_API_URL is not set)
//
// Two instances sharing one Redis, one emulator and the session keys, as
// behind a load balancer (from the repository's root, with redis-server
// installed; Ctrl-C stops the bank on :8081, then `kill %1 %2 %3`):
//
//	redis-server --port 6390 --save '' & go run ./cmd/authsignal-emulator -rules examples/bank/rules.yaml -auto-enroll & export BANK_REDIS_URL=redis://127.0.0.1:6390/0 BANK_SESSION_SECRET=$(openssl rand -hex 32) AUTHSIGNAL_SECRET=emulator-secret AUTHSIGNAL_API_URL=http://127.0.0.1:8787/v1; go run ./examples/bank -addr 127.0.0.1:8080 & go run ./examples/bank -addr 127.0.0.1:8081
//
// Log in on one, start a large transfer on the other: the parked request,
// the spent token, the admin area's Remember grant and the challenge caps
// live in Redis, so a challenge's callback URL works on either port, once.
// Balances are each instance's own (the demo keeps them in memory).
// BANK_POSTGRES_URL=postgres://… in place of BANK_REDIS_URL shares them
// through PostgreSQL instead.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/stepupkit/stepup"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
	redisstore "github.com/stepupkit/stepup/stores/redis"
)

func main() {
	if err := run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bank:", err)
		os.Exit(1)
	}
}

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fset := flag.NewFlagSet("bank", flag.ContinueOnError)
	fset.SetOutput(stderr)
	addr := fset.String("addr", env("BANK_ADDR", "127.0.0.1:8080"), "listen address")
	publicURL := fset.String("public-url", env("BANK_PUBLIC_URL", ""), "URL browsers use to reach the bank (default http://<addr>)")
	emuAddr := fset.String("emulator-addr", env("BANK_EMULATOR_ADDR", "127.0.0.1:8787"), "address of the embedded Authsignal emulator")
	policies := fset.String("policies", env("BANK_POLICIES", ""), "policy file (default: the embedded policies.yaml)")
	rules := fset.String("rules", env("BANK_RULES", ""), "emulator rules file (default: the embedded rules.yaml)")
	redisURL := fset.String("redis", env("BANK_REDIS_URL", ""), "Redis URL, redis://[:password@]host:port/db, for step-up records shared by instances (default: in memory)")
	postgresURL := fset.String("postgres", env("BANK_POSTGRES_URL", ""), "PostgreSQL URL, postgres://user:password@host:port/db, for step-up records shared by instances (default: in memory)")
	if err := fset.Parse(args); err != nil {
		return err
	}
	store, where, closeStore, err := openStore(*redisURL, *postgresURL)
	if err != nil {
		return err
	}
	defer closeStore()

	logger := slog.New(slog.NewTextHandler(stderr, nil))
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if *publicURL == "" {
		*publicURL = "http://" + ln.Addr().String()
	}
	app, err := NewApp(AppConfig{
		PublicURL:        *publicURL,
		AuthsignalSecret: getenv("AUTHSIGNAL_SECRET"),
		AuthsignalAPIURL: getenv("AUTHSIGNAL_API_URL"),
		AuthsignalRegion: getenv("AUTHSIGNAL_REGION"),
		EmulatorAddr:     *emuAddr,
		PoliciesFile:     *policies,
		RulesFile:        *rules,
		SessionSecret:    getenv("BANK_SESSION_SECRET"),
		Store:            store,
		Logger:           logger,
	})
	if err != nil {
		return err
	}
	defer app.Close()

	srv := &http.Server{
		Handler:           app.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	printBanner(stdout, *publicURL, app.EmulatorURL(), where)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	shutCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// openStore returns the Redis or PostgreSQL store a URL names, and where
// it is for the banner (never the password); nil, "in memory" for none.
func openStore(redisURL, postgresURL string) (stepup.Store, string, func(), error) {
	switch {
	case redisURL != "" && postgresURL != "":
		return nil, "", nil, errors.New("-redis and -postgres: choose one store")
	case postgresURL != "":
		return openPostgres(postgresURL)
	case redisURL == "":
		return nil, "in memory (this instance only)", func() {}, nil
	}
	rawURL := redisURL
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-redis: %w", err)
	}
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		return nil, "", nil, fmt.Errorf("-redis: %s: %w", opts.Addr, err)
	}
	where := fmt.Sprintf("Redis at %s, db %d (shared by every instance using it)", opts.Addr, opts.DB)
	return redisstore.New(client, redisstore.Prefix("bank:stepup:")), where, func() { client.Close() }, nil
}

// openPostgres connects to the database rawURL names and creates the
// store's tables there if they are missing.
func openPostgres(rawURL string) (stepup.Store, string, func(), error) {
	cfg, err := pgxpool.ParseConfig(rawURL)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-postgres: %w", err)
	}
	at := fmt.Sprintf("%s:%d", cfg.ConnConfig.Host, cfg.ConnConfig.Port)
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, "", nil, fmt.Errorf("-postgres: %s: %w", at, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pgstore.Migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, "", nil, fmt.Errorf("-postgres: %s: %w", at, err)
	}
	where := fmt.Sprintf("PostgreSQL at %s, database %s (shared by every instance using it)", at, cfg.ConnConfig.Database)
	return pgstore.New(pool), where, pool.Close, nil
}

func printBanner(w io.Writer, publicURL, emulatorURL, store string) {
	fmt.Fprintf(w, "\nStepup Bank is running.\n\n")
	fmt.Fprintf(w, "  Open          %s\n", publicURL)
	fmt.Fprintf(w, "  Log in as     alice / alice-password (customer and admin)   or   bob / bob-password (customer)\n")
	fmt.Fprintf(w, "                or carol / carol-password (customer without two-step verification: enrols at login)\n")
	if emulatorURL != "" {
		fmt.Fprintf(w, "  Step-up by    the embedded Authsignal emulator at %s\n", emulatorURL)
		fmt.Fprintf(w, "                (dev mode: the one-time code is shown on its page)\n")
	} else {
		fmt.Fprintf(w, "  Step-up by    Authsignal (AUTHSIGNAL_SECRET is set)\n")
	}
	fmt.Fprintf(w, "  Records in    %s\n", store)
	fmt.Fprintf(w, "  Try           a transfer over 1,000.00, changing your email, the admin area,\n")
	fmt.Fprintf(w, "                and the JSON API form on the dashboard\n\n")
	fmt.Fprintf(w, "  Use the address above exactly: the session cookie and the step-up\n")
	fmt.Fprintf(w, "  callback are bound to it. Ctrl-C stops.\n\n")
}
