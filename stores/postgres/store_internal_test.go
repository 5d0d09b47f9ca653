package pgstore

import (
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup"
)

// TestWrap: a database out of disk is a full store (503, new challenges
// and callbacks alike), a missing table says what to run, and anything
// else is named by the operation, never a sentinel the guard would take
// for an answer.
func TestWrap(t *testing.T) {
	for _, tc := range []struct {
		name   string
		given  error
		full   bool
		expect string
	}{
		{"disk full", &pgconn.PgError{Code: "53100", Message: "could not extend file"}, true, "pgstore: put: stepup: store is full: "},
		{"no table", &pgconn.PgError{Code: "42P01", Message: `relation "stepup_records" does not exist`}, false, "run pgstore.Migrate"},
		{"out of memory is not a full store", &pgconn.PgError{Code: "53200"}, false, "pgstore: put: "},
		{"a broken connection", errors.New("unexpected EOF"), false, "pgstore: put: unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := wrap("put", tc.given)
			assert.ErrorContains(t, err, tc.expect)
			assert.ErrorIs(t, err, tc.given)
			assert.Equal(t, tc.full, errors.Is(err, stepup.ErrStoreFull))
			for _, answer := range []error{stepup.ErrNotFound, stepup.ErrExists, stepup.ErrConsumed, stepup.ErrTooManyChallenges} {
				assert.NotErrorIs(t, err, answer)
			}
		})
	}
}
