package pgstore_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
	pgstore "github.com/stepupkit/stepup/stores/postgres"
)

// pgServer is a PostgreSQL the test started: initdb'd in a temporary
// directory, listening on a free port of 127.0.0.1 (and on a unix socket
// in that directory), run by an unprivileged user when the test runs as
// root, since PostgreSQL refuses to run as root.
type pgServer struct {
	t    testing.TB
	bin  string // the directory of initdb, pg_ctl and postgres
	dir  string // owned by the server's user: data/, the socket, the log
	port int
	user *osUser // nil: the server runs as the test's own user
	cmd  *exec.Cmd
}

// pgBinaries returns the directory of PostgreSQL's server programs, "" to
// skip the tests that need one. On CI (CI=true) missing binaries fail the
// test.
func pgBinaries(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("initdb"); err == nil {
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p)
		}
	}
	// Debian keeps them out of PATH, one directory per major version.
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("PostgreSQL's initdb is not installed (CI=true): run .ci/postgres-deps")
	}
	return ""
}

func version(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

var shared struct {
	srv  *pgServer
	done bool
}

// sharedServer is one PostgreSQL for the tests and benchmarks that only
// need a database, started at the first use and stopped by TestMain; nil
// without the binaries. Each store gets a schema of its own on it (see
// newPool).
func sharedServer(t testing.TB) *pgServer {
	t.Helper()
	if !shared.done {
		shared.done = true
		if bin := pgBinaries(t); bin != "" {
			shared.srv = newServer(t, bin)
			shared.srv.start()
		}
	} else if shared.srv == nil {
		pgBinaries(t) // fails on CI
	}
	return shared.srv
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.srv != nil {
		shared.srv.kill()
		_ = os.RemoveAll(shared.srv.dir)
	}
	os.Exit(code)
}

// mustServer is the shared server, or skips t without the binaries.
func mustServer(t testing.TB) *pgServer {
	t.Helper()
	srv := sharedServer(t)
	if srv == nil {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql); CI=true makes this a failure")
	}
	return srv
}

// startPostgres starts a PostgreSQL of its own for t, stopped at the end.
func startPostgres(t *testing.T) *pgServer {
	t.Helper()
	bin := pgBinaries(t)
	if bin == "" {
		t.Skip("PostgreSQL is not installed (apt-get install postgresql); CI=true makes this a failure")
	}
	s := newServer(t, bin)
	s.start()
	t.Cleanup(func() {
		s.kill()
		_ = os.RemoveAll(s.dir)
	})
	return s
}

// newServer makes the server's directory and its cluster (initdb).
func newServer(t testing.TB, bin string) *pgServer {
	t.Helper()
	parent := "" // os.TempDir
	if os.Geteuid() == 0 {
		parent = "/tmp" // a TMPDIR of root's own may be closed to the server's user
	}
	dir, err := os.MkdirTemp(parent, "pgstore-")
	require.NoError(t, err)
	s := &pgServer{t: t, bin: bin, dir: dir, port: freePort(t)}
	if os.Geteuid() == 0 {
		s.user, err = serverUser()
		require.NoError(t, err, "PostgreSQL refuses to run as root and no user to run it as was found")
		require.NoError(t, os.Chown(dir, s.user.uid, s.user.gid))
	}
	out, err := s.command("initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--locale=C", "--no-sync").CombinedOutput()
	require.NoError(t, err, "initdb: %s", out)
	return s
}

func (s *pgServer) data() string { return filepath.Join(s.dir, "data") }

// command runs one of the server's programs as the server's user.
func (s *pgServer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(s.bin, name), args...)
	cmd.Dir = s.dir
	runAs(cmd, s.user)
	return cmd
}

// start runs postgres in the foreground, a child of the test (so that it
// dies with it), and waits until it accepts connections. fsync is off:
// what a test kills is the server, never the machine, and a write the
// server acknowledged is in the kernel's cache, from which the server
// recovers it at restart.
func (s *pgServer) start() {
	s.t.Helper()
	log, err := os.OpenFile(filepath.Join(s.dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(s.t, err)
	defer log.Close()
	s.cmd = s.command("postgres", "-D", s.data(), "-p", strconv.Itoa(s.port),
		"-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="+s.dir,
		"-c", "fsync=off", "-c", "max_connections=200")
	s.cmd.Stdout, s.cmd.Stderr = log, log
	dieWithTest(s.cmd)
	require.NoError(s.t, s.cmd.Start())
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := pgx.Connect(ctx, s.url())
		cancel()
		if err == nil {
			_ = c.Close(context.Background())
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postgres did not accept connections: %v; see %s", err, filepath.Join(s.dir, "postgres.log"))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stopImmediately stops the server as a crash would: pg_ctl stop -m
// immediate ends every process of it without a checkpoint, and the next
// start recovers from the write-ahead log.
func (s *pgServer) stopImmediately() {
	s.t.Helper()
	out, err := s.command("pg_ctl", "stop", "-D", s.data(), "-m", "immediate", "-w").CombinedOutput()
	require.NoError(s.t, err, "pg_ctl stop: %s", out)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// kill stops the server at once (SIGQUIT is PostgreSQL's immediate
// shutdown), or kills it when it does not stop.
func (s *pgServer) kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(quitSignal)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
	s.cmd = nil
}

func (s *pgServer) url() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

var schemas atomic.Int64

// newPool returns a pool on a new schema of srv, migrated, closed at the
// end of t: the stores of one server are kept apart by their search_path.
func (s *pgServer) newPool(t testing.TB, maxConns int32, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	schema := fmt.Sprintf("test%d", schemas.Add(1))
	c, err := pgx.Connect(ctx, s.url())
	require.NoError(t, err)
	_, err = c.Exec(ctx, "CREATE SCHEMA "+schema)
	require.NoError(t, err)
	require.NoError(t, c.Close(ctx))
	pool := s.pool(t, schema, maxConns, configure...)
	require.NoError(t, pgstore.Migrate(ctx, pool))
	return pool
}

// pool returns a pool on schema of srv, closed at the end of t.
func (s *pgServer) pool(t testing.TB, schema string, maxConns int32, configure ...func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(s.url())
	require.NoError(t, err)
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	cfg.MaxConns = maxConns
	for _, c := range configure {
		c(cfg)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	return pool
}

// muxApp mounts the suite's application on a ServeMux behind the guard.
var muxApp = stepuptest.Adapter{
	Name:  "servemux",
	Param: func(name string) string { return "{" + name + "}" },
	Mount: func(t testing.TB, g *stepup.Guard, h stepuptest.Handlers) http.Handler {
		mux := http.NewServeMux()
		mux.Handle("POST /login", h.Login)
		mux.Handle("POST /logout", h.Logout)
		mux.Handle("POST /signin", h.SignIn)
		mux.Handle("POST /transfer", h.Transfer)
		mux.Handle("POST /api/transfer", h.APITrans)
		mux.Handle("PUT /profile", h.Profile)
		mux.Handle("DELETE /items/{id}", h.DeleteItem)
		mux.Handle("GET /report", h.Report)
		mux.Handle("GET /admin", h.Admin)
		mux.Handle("/open", h.Open)
		mux.Handle("POST /block", h.Block)
		mux.Handle("POST /review", h.Review)
		root := g.Middleware(mux)
		mux.Handle("GET "+stepuptest.CallbackPath, g.Callback(root))
		require.NoError(t, g.CheckServeMux(mux))
		return root
	},
}

// osUser is who runs the server when the test runs as root.
type osUser struct{ uid, gid int }

// serverUser is the postgres user that Debian's package creates, or
// nobody.
func serverUser() (*osUser, error) {
	var err error
	for _, name := range []string{"postgres", "nobody"} {
		var u *user.User
		if u, err = user.Lookup(name); err != nil {
			continue
		}
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 == nil && err2 == nil {
			return &osUser{uid, gid}, nil
		}
	}
	return nil, err
}
