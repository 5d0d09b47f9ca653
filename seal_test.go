package stepup_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/stepuptest"
)

// tamperingStore is a Store whose writer is hostile: what it hands back
// for an id is whatever tamper makes of the record it holds (the sealed
// record the guard wrote), nil when tamper is nil.
type tamperingStore struct {
	*stepup.MemoryStore
	mu     sync.Mutex
	tamper func(id string, rec *stepup.Record) *stepup.Record
}

func (s *tamperingStore) set(f func(id string, rec *stepup.Record) *stepup.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tamper = f
}

func (s *tamperingStore) alter(id string, rec *stepup.Record) *stepup.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tamper == nil {
		return rec
	}
	return s.tamper(id, rec)
}

func (s *tamperingStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	rec, err := s.MemoryStore.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.alter(id, rec), nil
}

func (s *tamperingStore) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	rec, err := s.MemoryStore.Consume(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.alter(id, rec), nil
}

// raw is the record as the store holds it.
func (s *tamperingStore) raw(t *testing.T, id string) *stepup.Record {
	t.Helper()
	rec, err := s.MemoryStore.Get(context.Background(), id)
	require.NoError(t, err)
	return rec
}

// tamperEnv is the conformance application on a tamperingStore, its
// guard logging to logs.
func tamperEnv(t *testing.T) (*stepuptest.Env, *tamperingStore, *syncBuffer) {
	t.Helper()
	store := &tamperingStore{}
	logs := &syncBuffer{}
	env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{
		Store: func(now func() time.Time) stepup.Store {
			store.MemoryStore = stepup.NewMemoryStore(stepup.MemoryClock(now))
			return store
		},
		Config: func(c *stepup.Config) { c.Logger = slog.New(slog.NewJSONHandler(logs, nil)) },
	})
	return env, store, logs
}

// Records at rest (SECURITY.md): what reaches the Store carries no body,
// query, header, user or action in clear.
func TestRecordsAtRestAreSealed(t *testing.T) {
	env, store, _ := tamperEnv(t)
	b := env.NewBrowser()
	b.Login("alice")
	const body = "amount=5000&iban=DE89370400440532013000"
	challenge := b.Challenge(b.Do(http.MethodPost, "/transfer?note=rent", stepuptest.Form, body, nil))
	park := stepuptest.Param(b.Complete(challenge), "park")

	rec := store.raw(t, park)
	assert.Equal(t, stepup.KindPark, rec.Kind)
	assert.Equal(t, park, rec.ID)
	assert.Empty(t, rec.Body)
	assert.Empty(t, rec.Query)
	assert.Empty(t, rec.Header)
	assert.Empty(t, rec.UserID)
	assert.Empty(t, rec.Action)
	assert.Empty(t, rec.Path)
	require.NotEmpty(t, rec.Sealed)
	for _, secret := range []string{"DE89370400440532013000", "5000", "rent", "alice", "transfer", "x-www-form-urlencoded"} {
		assert.False(t, bytes.Contains(rec.Sealed, []byte(secret)), "%q in the sealed bytes", secret)
	}
	encoded, err := stepup.MarshalRecord(rec)
	require.NoError(t, err)
	assert.NotContains(t, string(encoded), "DE89370400440532013000", "nor in what a byte store keeps")
}

// Every record the guard acts on is authenticated, bound to the id it is
// stored under: a record altered, swapped, planted or replayed under a new
// id is refused with a logged reason, and nothing runs on it.
func TestTamperedRecordsAreRefused(t *testing.T) {
	flip := func(rec *stepup.Record) *stepup.Record {
		c := *rec
		c.Sealed = append([]byte(nil), rec.Sealed...)
		c.Sealed[len(c.Sealed)/2] ^= 1
		return &c
	}
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, store *tamperingStore, park, other string) func(id string, rec *stepup.Record) *stepup.Record
	}{
		{"a byte of the sealed part flipped", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(_ string, rec *stepup.Record) *stepup.Record { return flip(rec) }
		}},
		{"the expiry pushed back", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(_ string, rec *stepup.Record) *stepup.Record {
				c := *rec
				c.Expires = c.Expires.Add(time.Second)
				return &c
			}
		}},
		{"the creation time changed", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(_ string, rec *stepup.Record) *stepup.Record {
				c := *rec
				c.Created = c.Created.Add(-time.Hour)
				return &c
			}
		}},
		{"the kind changed", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(_ string, rec *stepup.Record) *stepup.Record {
				c := *rec
				c.Kind = stepup.KindAPI
				return &c
			}
		}},
		{"the park id changed", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(_ string, rec *stepup.Record) *stepup.Record {
				c := *rec
				c.Park = "another"
				return &c
			}
		}},
		{"another user's park under this park's id", func(t *testing.T, store *tamperingStore, park, other string) func(string, *stepup.Record) *stepup.Record {
			bobs := store.raw(t, other)
			return func(id string, rec *stepup.Record) *stepup.Record {
				if id != park {
					return rec
				}
				c := *bobs
				c.ID = park
				return &c
			}
		}},
		{"another user's park returned as it is", func(t *testing.T, store *tamperingStore, park, other string) func(string, *stepup.Record) *stepup.Record {
			bobs := store.raw(t, other)
			return func(id string, rec *stepup.Record) *stepup.Record {
				if id != park {
					return rec
				}
				return bobs
			}
		}},
		{"a record planted in clear", func(*testing.T, *tamperingStore, string, string) func(string, *stepup.Record) *stepup.Record {
			return func(id string, rec *stepup.Record) *stepup.Record {
				if rec.Kind != stepup.KindPark {
					return rec
				}
				return &stepup.Record{ID: id, Kind: stepup.KindPark, UserID: "alice", Action: "transfer", Method: http.MethodPost,
					Path: "/transfer", Header: http.Header{"Content-Type": {stepuptest.Form}}, Body: []byte("amount=999999"),
					Created: rec.Created, Expires: rec.Expires}
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, store, logs := tamperEnv(t)
			bob := env.NewBrowser()
			bob.Login("bob")
			bobsCallback := bob.Complete(bob.Challenge(bob.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=7777", nil)))
			alice := env.NewBrowser()
			alice.Login("alice")
			cb := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))

			store.set(tc.tamper(t, store, stepuptest.Param(cb, "park"), stepuptest.Param(bobsCallback, "park")))
			resp := alice.Get(cb)
			assert.NotEqual(t, http.StatusOK, resp.StatusCode, resp.Body)
			assert.Empty(t, env.Ledger.Runs("transfer"), "nothing ran")
			assert.Contains(t, logs.String(), `"event":"record_refused"`)
			assert.NotContains(t, logs.String(), "5000", "the log names no body")

			// The control: the record the guard wrote, untouched, runs
			// as it was parked, once.
			store.set(nil)
			require.Equal(t, http.StatusOK, alice.Get(cb).StatusCode)
			runs := env.Ledger.Runs("transfer")
			require.Len(t, runs, 1)
			assert.Equal(t, "alice", runs[0].User)
			assert.Equal(t, "amount=5000", string(runs[0].Body))
		})
	}
}

// An old record written again under a new id (the store keeps a copy of
// a park that already ran, and hands it out for the next one) is refused:
// the first request never runs twice, the second never runs as the first.
func TestOldRecordUnderNewIDIsRefused(t *testing.T) {
	env, store, logs := tamperEnv(t)
	alice := env.NewBrowser()
	alice.Login("alice")
	first := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
	old := store.raw(t, stepuptest.Param(first, "park"))
	require.Equal(t, http.StatusOK, alice.Get(first).StatusCode)
	require.Len(t, env.Ledger.Runs("transfer"), 1)

	second := alice.Complete(alice.Challenge(alice.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=1001", nil)))
	park := stepuptest.Param(second, "park")
	store.set(func(id string, rec *stepup.Record) *stepup.Record {
		if id != park {
			return rec
		}
		c := *old
		c.ID, c.Consumed = park, rec.Consumed
		return &c
	})
	resp := alice.Get(second)
	assert.NotEqual(t, http.StatusOK, resp.StatusCode, resp.Body)
	require.Len(t, env.Ledger.Runs("transfer"), 1, "neither request ran again")
	assert.Contains(t, logs.String(), `"event":"record_refused"`)
}

// A GET pass and a Remember grant the store altered are no pass and no
// grant: the request is challenged again and its handler does not run.
func TestTamperedGrantsAndPassesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, path, ledger string
		kinds              []stepup.Kind // altered in the store
	}{
		{"pass", "/report", "report", []stepup.Kind{stepup.KindPass}},
		{"grant", "/admin", "admin", []stepup.Kind{stepup.KindPass, stepup.KindGrant}}, // the pass too: only the grant could open it
	} {
		t.Run(tc.name, func(t *testing.T) {
			env, store, logs := tamperEnv(t)
			b := env.NewBrowser()
			b.Login("alice")
			store.set(func(_ string, rec *stepup.Record) *stepup.Record {
				if !slices.Contains(tc.kinds, rec.Kind) {
					return rec
				}
				c := *rec
				c.Sealed = append([]byte(nil), rec.Sealed...)
				c.Sealed[len(c.Sealed)-1] ^= 0x80
				return &c
			})
			resumed := b.Get(b.Complete(b.Challenge(b.Get(tc.path))))
			require.Equal(t, http.StatusSeeOther, resumed.StatusCode, resumed.Body)
			require.Equal(t, tc.path, resumed.Header.Get("Location"))
			next := b.Get(tc.path)
			assert.True(t, challenged(env, next), "the altered pass opens nothing: %d %s", next.StatusCode, next.Body)
			assert.True(t, challenged(env, b.Get(tc.path)), "nor does an altered grant")
			assert.Empty(t, env.Ledger.Runs(tc.ledger))
			assert.Contains(t, logs.String(), `"event":"record_refused"`)

			store.set(nil) // the control: the same records, unaltered, open it
			assert.Equal(t, http.StatusOK, b.Get(tc.path).StatusCode)
			assert.Len(t, env.Ledger.Runs(tc.ledger), 1)
		})
	}
}

// Instances sharing a Store share its RecordKeys: with the same keys they
// complete each other's challenges, with other keys they refuse them; with
// a new key first and the old one after it, records sealed before the
// rotation still open, and new ones are sealed with the new key.
func TestRecordKeysAcrossInstances(t *testing.T) {
	oldKey := []byte("the old 32-byte record secret...")
	newKey := []byte("the new 32-byte record secret!!!")
	otherKey := []byte("another fleet's 32-byte secret..")
	instances := func(t *testing.T, first, second [][]byte) (*stepuptest.Env, *httptest.Server) {
		keys := func(k [][]byte) stepuptest.Options {
			return stepuptest.Options{ // the instances share the Env's Store
				Store: func(now func() time.Time) stepup.Store {
					return struct{ stepup.Store }{stepup.NewMemoryStore(stepup.MemoryClock(now))}
				},
				Config: func(c *stepup.Config) { c.RecordKeys = k },
			}
		}
		env := stepuptest.NewEnv(t, guardedApp, keys(first))
		return env, env.Instance(guardedApp, keys(second))
	}
	flow := func(t *testing.T, env *stepuptest.Env, other *httptest.Server) *stepuptest.Response {
		b := env.NewBrowser()
		b.Login("alice")
		cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer", stepuptest.Form, "amount=5000", nil)))
		return b.Get(stepuptest.OnInstance(cb, other))
	}
	t.Run("same keys", func(t *testing.T) {
		env, other := instances(t, [][]byte{oldKey}, [][]byte{oldKey})
		resp := flow(t, env, other)
		assert.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
	t.Run("other keys", func(t *testing.T) {
		env, other := instances(t, [][]byte{oldKey}, [][]byte{otherKey})
		resp := flow(t, env, other)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
	t.Run("rotation: the old key opens", func(t *testing.T) {
		env, rotated := instances(t, [][]byte{oldKey}, [][]byte{newKey, oldKey})
		resp := flow(t, env, rotated)
		assert.Equal(t, http.StatusOK, resp.StatusCode, resp.Body)
		assert.Len(t, env.Ledger.Runs("transfer"), 1)
	})
	t.Run("rotation: the new key seals", func(t *testing.T) {
		env, oldOnly := instances(t, [][]byte{newKey, oldKey}, [][]byte{oldKey})
		resp := flow(t, env, oldOnly)
		assert.NotEqual(t, http.StatusOK, resp.StatusCode, "sealed with the new key: %s", resp.Body)
		assert.Empty(t, env.Ledger.Runs("transfer"))
	})
}

// New picks the record keys: RecordKeys; else keys derived from
// CookieKeys; else, for a MemoryStore only, the process's own key. Any
// other Store without keys is refused, naming the field to set.
func TestNewRecordKeys(t *testing.T) {
	shared := struct{ stepup.Store }{stepup.NewMemoryStore()}
	for _, tc := range []struct {
		name   string
		given  func(c *stepup.Config)
		expect string // "" when New accepts it
	}{
		{"default MemoryStore, no keys", func(*stepup.Config) {}, ""},
		{"a MemoryStore, no keys", func(c *stepup.Config) { c.Store = stepup.NewMemoryStore() }, ""},
		{"a shared Store, no keys", func(c *stepup.Config) { c.Store = shared }, "Config.RecordKeys"},
		{"a shared Store, RecordKeys", func(c *stepup.Config) { c.Store, c.RecordKeys = shared, [][]byte{stepuptest.RecordKey} }, ""},
		{"a shared Store, CookieKeys", func(c *stepup.Config) {
			c.Store, c.CookieKeys = shared, [][]byte{[]byte("a 32-byte cookie key for the tst")}
		}, ""},
		{"a short record key", func(c *stepup.Config) { c.RecordKeys = [][]byte{[]byte("short")} }, "Config.RecordKeys[0] is 5 bytes"},
		{"a short second record key", func(c *stepup.Config) { c.RecordKeys = [][]byte{stepuptest.RecordKey, make([]byte, 31)} },
			"Config.RecordKeys[1] is 31 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validConfig()
			tc.given(&cfg)
			_, err := stepup.New(cfg)
			if tc.expect == "" {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.expect)
		})
	}
}

// A byte store (stores/redis) keeps the sealed record as MarshalRecord
// encodes it, a database may keep its times to the microsecond in another
// time zone: the guard opens the record after either round trip.
func TestSealedRecordsSurviveAByteStore(t *testing.T) {
	for _, micro := range []bool{false, true} {
		t.Run(map[bool]string{false: "MarshalRecord", true: "times to the microsecond"}[micro], func(t *testing.T) {
			env := stepuptest.NewEnv(t, guardedApp, stepuptest.Options{Store: func(now func() time.Time) stepup.Store {
				return &bytesStore{MemoryStore: stepup.NewMemoryStore(stepup.MemoryClock(now)), micro: micro}
			}})
			env.Clock.Advance(1234567 * time.Nanosecond) // times that a microsecond column rounds
			b := env.NewBrowser()
			b.Login("alice")
			cb := b.Complete(b.Challenge(b.Do(http.MethodPost, "/transfer?x=1", stepuptest.Form, "amount=5000", nil)))
			require.Equal(t, http.StatusOK, b.Get(cb).StatusCode)
			runs := env.Ledger.Runs("transfer")
			require.Len(t, runs, 1)
			assert.Equal(t, "amount=5000", string(runs[0].Body))
			assert.Equal(t, "x=1", runs[0].Query)
			again := b.Get(cb)
			assert.Equal(t, http.StatusOK, again.StatusCode, "the kept answer opens too")
			assert.Len(t, env.Ledger.Runs("transfer"), 1)
		})
	}
}

// bytesStore round-trips every record through MarshalRecord and
// UnmarshalRecord, as a store of bytes does; with micro, it also rounds
// the times to the microsecond and moves them to another zone, as a
// PostgreSQL timestamptz column does.
type bytesStore struct {
	*stepup.MemoryStore
	micro bool
}

func (s *bytesStore) Put(ctx context.Context, rec *stepup.Record) error {
	if s.micro {
		c := *rec
		zone := time.FixedZone("UTC+2", 2*60*60)
		c.Created, c.Expires = c.Created.Round(time.Microsecond).In(zone), c.Expires.Round(time.Microsecond).In(zone)
		rec = &c
	}
	return s.MemoryStore.Put(ctx, rec)
}

func (s *bytesStore) roundTrip(rec *stepup.Record, err error) (*stepup.Record, error) {
	if err != nil {
		return nil, err
	}
	data, err := stepup.MarshalRecord(rec)
	if err != nil {
		return nil, err
	}
	if !json.Valid(data) || !strings.Contains(string(data), `"sealed"`) {
		return nil, assert.AnError
	}
	out, err := stepup.UnmarshalRecord(data)
	if err != nil {
		return nil, err
	}
	out.Consumed = rec.Consumed
	return out, nil
}

func (s *bytesStore) Get(ctx context.Context, id string) (*stepup.Record, error) {
	return s.roundTrip(s.MemoryStore.Get(ctx, id))
}

func (s *bytesStore) Consume(ctx context.Context, id string) (*stepup.Record, error) {
	return s.roundTrip(s.MemoryStore.Consume(ctx, id))
}
