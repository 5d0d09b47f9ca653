package stepup_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/stepupkit/stepup"
)

// The byte slices of a record handed out by Get or Consume share one
// allocation, but each is the caller's alone: appending to the body, the
// body hash or a shown hash writes into none of the others, and nothing
// of it reaches the stored record. An empty slice comes back nil, as it
// did when each was copied on its own.
func TestMemoryStoreCopiesShareNoRoom(t *testing.T) {
	ctx := context.Background()
	s := stepup.NewMemoryStore()
	now := time.Now()
	rec := &stepup.Record{ID: "p0123456789abcdefghijk", Kind: stepup.KindAPI, UserID: "alice", Action: "transfer",
		Method: http.MethodPost, Path: "/transfer", Header: http.Header{"Accept": {"a", "b"}, "Origin": {"o"}},
		Body: []byte("body"), BodyHash: []byte{1, 2}, Judged: []byte{7, 8}, Shown: [][]byte{{3, 4}, {5, 6}},
		Created: now, Expires: now.Add(time.Minute)}
	require.NoError(t, s.Put(ctx, rec))
	scribble := func(r *stepup.Record) {
		_ = append(r.Body, 'X')
		_ = append(r.BodyHash, 9)
		_ = append(r.Judged, 9)
		for _, h := range r.Shown {
			_ = append(h, 9)
		}
		for _, vs := range r.Header {
			_ = append(vs, "X")
		}
	}
	for _, read := range []func() (*stepup.Record, error){
		func() (*stepup.Record, error) { return s.Get(ctx, rec.ID) },
		func() (*stepup.Record, error) { return s.Consume(ctx, rec.ID) },
		func() (*stepup.Record, error) { return s.Get(ctx, rec.ID) },
	} {
		got, err := read()
		require.NoError(t, err)
		scribble(got)
		assert.Equal(t, "body", string(got.Body))
		assert.Equal(t, []byte{1, 2}, got.BodyHash)
		assert.Equal(t, []byte{7, 8}, got.Judged)
		assert.Equal(t, [][]byte{{3, 4}, {5, 6}}, got.Shown)
		assert.Equal(t, http.Header{"Accept": {"a", "b"}, "Origin": {"o"}}, got.Header)
	}

	bare := &stepup.Record{ID: "bare", Kind: stepup.KindAPI, Body: []byte{}, BodyHash: []byte{}, Judged: []byte{}, Shown: [][]byte{{}},
		Created: now, Expires: now.Add(time.Minute)}
	require.NoError(t, s.Put(ctx, bare))
	got, err := s.Get(ctx, bare.ID)
	require.NoError(t, err)
	assert.Nil(t, got.Body)
	assert.Nil(t, got.BodyHash)
	assert.Nil(t, got.Judged)
	assert.Equal(t, [][]byte{nil}, got.Shown)
	assert.Nil(t, got.Header)
}
