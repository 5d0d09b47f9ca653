package stepup

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup/authsignal"
)

// grantGuard is a guard remembering GET /admin for 5 minutes, on store,
// with keys, whose clock is *now.
func grantGuard(t testing.TB, store Store, now *time.Time, keys ...[]byte) *Guard {
	t.Helper()
	g, err := New(Config{
		Provider:    authsignal.NewClient("secret"),
		CookieKeys:  [][]byte{[]byte("a 32-byte cookie key for testing")},
		RecordKeys:  keys,
		UserID:      func(*http.Request) (string, error) { return "alice", nil },
		CallbackURL: "https://app.example/stepup/callback",
		Policies:    []Policy{{Method: http.MethodGet, Route: "/admin", Action: "admin", Remember: 5 * time.Minute}},
		Store:       store,
		Now:         func() time.Time { return *now },
	})
	require.NoError(t, err)
	return g
}

// earn gives alice a grant for "admin" as a completed challenge does, in
// st, and returns the slot id it took ("" when none).
func earn(g *Guard, st *sessionState, method string) string {
	g.grant(context.Background(), st, &Record{ID: newID(), Kind: KindPark, UserID: "alice", Action: "admin",
		Remember: 5 * time.Minute, VerificationMethod: method})
	for _, r := range st.data.Grants {
		if r.Action == "admin" {
			return r.ID
		}
	}
	return ""
}

// remembered reports whether a GET /admin of alice holding st's grant
// runs on it.
func remembered(g *Guard, st *sessionState) bool {
	r := httptest.NewRequest(http.MethodGet, "/admin", nil)
	how, _ := g.usePassOrGrant(r, st, g.rules.lookup(http.MethodGet, "/admin"), "alice", nil)
	return how == HowRemembered
}

func TestLiveGrantChecksEachField(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	live := func() *Record {
		return &Record{ID: "g", Kind: KindGrant, UserID: "alice", Action: "admin", Created: now, Expires: now.Add(time.Minute)}
	}
	exp := now.Add(time.Minute).Unix()
	require.True(t, liveGrant(live(), "alice", "admin", exp, now), "the control")
	for _, tc := range []struct {
		name   string
		change func(r *Record)
		user   string
		action string
		exp    int64
		at     time.Time
	}{
		{"another kind", func(r *Record) { r.Kind = KindPass }, "alice", "admin", exp, now},
		{"consumed (revoked)", func(r *Record) { r.Consumed = true }, "alice", "admin", exp, now},
		{"another user", func(*Record) {}, "bob", "admin", exp, now},
		{"another action", func(*Record) {}, "alice", "report", exp, now},
		{"another grant in the slot: a later expiry", func(*Record) {}, "alice", "admin", exp - 1, now},
		{"another grant in the slot: an earlier expiry", func(*Record) {}, "alice", "admin", exp + 1, now},
		{"at its expiry", func(*Record) {}, "alice", "admin", exp, now.Add(time.Minute)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := live()
			tc.change(r)
			assert.False(t, liveGrant(r, tc.user, tc.action, tc.exp, tc.at))
		})
	}
	assert.True(t, liveGrant(live(), "alice", "admin", exp, now.Add(time.Minute-time.Nanosecond)), "live until then")
}

func TestGrantSlotIDs(t *testing.T) {
	key, other := make([]byte, 32), []byte("another 32-byte key for owners..")
	id := grantID(grantOwner(key, "alice"), 7)
	assert.Len(t, id, grantIDLen)
	assert.True(t, strings.HasPrefix(id, "g.") && strings.HasSuffix(id, ".07"), id)
	assert.NotContains(t, id, "alice", "the Store never sees the user id")
	assert.True(t, isGrantSlot(id))
	assert.True(t, isGrantSlot(grantID(grantOwner(key, "bob"), maxUserGrants-1)))
	assert.NotEqual(t, grantOwner(key, "alice"), grantOwner(key, "bob"))
	assert.NotEqual(t, grantOwner(key, "alice"), grantOwner(other, "alice"), "the owner is keyed")
	for _, bad := range []string{newID(), "", "g.", id[:grantIDLen-1], id + "0", "x" + id[1:], "g" + id[2:] + "0"} {
		assert.False(t, isGrantSlot(bad), "%q", bad)
	}
}

// A grant written before grants had slots (a random id, which Grants
// cannot list nor Revoke end) is no longer honoured.
func TestGrantOutsideASlotIsNotHonoured(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := grantGuard(t, NewMemoryStore(MemoryClock(func() time.Time { return now })), &now)
	st := &sessionState{}
	id := newID()
	rec := &Record{ID: id, Kind: KindGrant, UserID: "alice", Action: "admin", Created: now, Expires: now.Add(time.Minute)}
	require.NoError(t, g.cfg.Store.Put(context.Background(), rec))
	st.addGrant(id, "admin", rec.Expires)
	assert.False(t, remembered(g, st))

	st = &sessionState{}
	require.NotEmpty(t, earn(g, st, "SMS"))
	assert.True(t, remembered(g, st), "the control: a grant in its slot")
}

// Each user has maxUserGrants slots. A grant ended early keeps its slot
// until it would have expired, so that no reference to it finds another
// grant; with every slot taken a challenge earns no grant (the next request
// is challenged again), until the slots expire.
func TestGrantSlotsAreBoundedAndEndedGrantsKeepTheirSlot(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	g := grantGuard(t, NewMemoryStore(MemoryClock(func() time.Time { return now })), &now)
	first := &sessionState{}
	firstID := earn(g, first, "SMS")
	for range maxUserGrants - 1 {
		require.NotEmpty(t, earn(g, &sessionState{}, "SMS"))
	}
	grants, err := g.Grants(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, grants, maxUserGrants)
	assert.Empty(t, earn(g, &sessionState{}, "SMS"), "no slot left")

	require.NoError(t, g.Revoke(ctx, "alice"))
	assert.False(t, remembered(g, first))
	assert.Empty(t, earn(g, &sessionState{}, "SMS"), "the revoked grants keep their slots")
	grants, err = g.Grants(ctx, "alice")
	require.NoError(t, err)
	assert.Empty(t, grants)

	now = now.Add(5 * time.Minute)
	st := &sessionState{}
	assert.Equal(t, firstID, earn(g, st, "SMS"), "the first slot, once its grant expired")
	assert.True(t, remembered(g, st))
	assert.False(t, remembered(g, first), "the expired reference does not find the new grant in its slot")
}

// Grants and Revoke find grants sealed under every RecordKey: after a
// rotation (the new key first), the grants the old key named are listed and
// revoked, and new ones are named by the new key.
func TestGrantsAcrossARecordKeyRotation(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	store := NewMemoryStore(MemoryClock(func() time.Time { return now }))
	oldKey, newKey := []byte("the old 32-byte record secret..."), []byte("the new 32-byte record secret!!!")
	before := grantGuard(t, store, &now, oldKey)
	after := grantGuard(t, store, &now, newKey, oldKey)
	oldSt, newSt := &sessionState{}, &sessionState{}
	oldID := earn(before, oldSt, "SMS")
	now = now.Add(time.Second)
	newSlot := earn(after, newSt, "PASSKEY")
	assert.NotEqual(t, oldID[:len(oldID)-3], newSlot[:len(newSlot)-3], "each key names its own slots")

	grants, err := after.Grants(ctx, "alice")
	require.NoError(t, err)
	require.Len(t, grants, 2)
	assert.Equal(t, []string{"SMS", "PASSKEY"}, []string{grants[0].Method, grants[1].Method}, "oldest first")
	assert.True(t, grants[0].Earned.Before(grants[1].Earned))

	require.NoError(t, after.Revoke(ctx, "alice", "admin"))
	assert.False(t, remembered(after, oldSt))
	assert.False(t, remembered(after, newSt))
}

func TestGrantsAndRevokeNeedAUser(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	g := grantGuard(t, NewMemoryStore(), &now)
	_, err := g.Grants(context.Background(), "")
	assert.Error(t, err)
	assert.Error(t, g.Revoke(context.Background(), ""))
}

// Only grants of the user count: a record of another kind or another user
// in one of the user's slots (which the guard never writes) is neither
// listed nor consumed; a grant the guard's clock sees expired is not
// listed, whatever the Store's clock says.
func TestGrantsReadOnlyTheUsersLiveGrants(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	storeNow := now
	store := NewMemoryStore(MemoryClock(func() time.Time { return storeNow }))
	g := grantGuard(t, store, &now)
	owner := grantOwner(g.grantOwners[0], "alice")
	for i, rec := range []*Record{
		{Kind: KindGrant, UserID: "bob", Action: "admin"},
		{Kind: KindPass, UserID: "alice", Action: "admin", Method: http.MethodGet, Path: "/admin"},
	} {
		rec.ID, rec.Created, rec.Expires = grantID(owner, i), now, now.Add(time.Minute)
		require.NoError(t, g.cfg.Store.Put(ctx, rec))
	}
	grants, err := g.Grants(ctx, "alice")
	require.NoError(t, err)
	assert.Empty(t, grants)
	require.NoError(t, g.Revoke(ctx, "alice"))
	for i := range 2 {
		rec, err := g.cfg.Store.Get(ctx, grantID(owner, i))
		require.NoError(t, err)
		assert.False(t, rec.Consumed, "slot %d: not alice's grant, not revoked", i)
	}

	require.Equal(t, grantID(owner, 2), earn(g, &sessionState{}, "SMS"), "the first free slot")
	now = now.Add(5 * time.Minute) // the guard's clock: expired; the Store's: not yet
	grants, err = g.Grants(ctx, "alice")
	require.NoError(t, err)
	assert.Empty(t, grants)
}

// A grant the session lets go of (Forget, a newer grant, another user) is
// consumed, keeping its slot; any other record is deleted.
func TestEndRecordConsumesGrantsAndDeletesTheRest(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	g := grantGuard(t, NewMemoryStore(MemoryClock(func() time.Time { return now })), &now)
	id := earn(g, &sessionState{}, "SMS")
	g.endRecord(ctx, id)
	rec, err := g.cfg.Store.Get(ctx, id)
	require.NoError(t, err)
	assert.True(t, rec.Consumed)

	pass := &Record{ID: newID(), Kind: KindPass, UserID: "alice", Action: "admin", Created: now, Expires: now.Add(time.Minute)}
	require.NoError(t, g.cfg.Store.Put(ctx, pass))
	g.endRecord(ctx, pass.ID)
	_, err = g.cfg.Store.Get(ctx, pass.ID)
	assert.ErrorIs(t, err, ErrNotFound)
}

// What listing a user's grants costs on a MemoryStore (32 sealed Gets,
// opening each grant found), by how many grants the user holds, and what
// the grant check of a request costs (one Get), for comparison.
func BenchmarkGrants(b *testing.B) {
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0)
	for _, n := range []int{0, 4, maxUserGrants} {
		b.Run(fmt.Sprintf("Grants/n=%d", n), func(b *testing.B) {
			g := grantGuard(b, NewMemoryStore(MemoryClock(func() time.Time { return now })), &now)
			for range n {
				earn(g, &sessionState{}, "SMS")
			}
			b.ReportAllocs()
			for b.Loop() {
				if gs, err := g.Grants(ctx, "alice"); err != nil || len(gs) != n {
					b.Fatal(err, len(gs))
				}
			}
		})
	}
	b.Run("the check of one request", func(b *testing.B) {
		g := grantGuard(b, NewMemoryStore(MemoryClock(func() time.Time { return now })), &now)
		st := &sessionState{}
		earn(g, st, "SMS")
		b.ReportAllocs()
		for b.Loop() {
			if !remembered(g, st) {
				b.Fatal("not remembered")
			}
		}
	})
}
