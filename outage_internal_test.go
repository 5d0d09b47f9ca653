package stepup

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// TestFaultLogLines: the log line of a store fault is written once per
// faultLogEvery, with the count of those left out; a clock that steps
// back writes one at once rather than falling silent; other causes are
// always written and never counted.
func TestFaultLogLines(t *testing.T) {
	fault := fmt.Errorf("%w: store: %w", ErrInternal, storeFault{errors.New("down")})
	t0 := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	var l faultLog
	for _, step := range []struct {
		name    string
		err     error
		at      time.Time
		write   bool
		skipped int64
	}{
		{"first", fault, t0, true, 0},
		{"at once", fault, t0, false, 0},
		{"another cause", ErrBlocked, t0, true, 0},
		{"nil", nil, t0, true, 0},
		{"just before the interval", fault, t0.Add(faultLogEvery - 1), false, 0},
		{"at the interval", fault, t0.Add(faultLogEvery), true, 2},
		{"clock stepped back", fault, t0, true, 0},
		{"after the step back", fault, t0.Add(time.Second), false, 0},
	} {
		write, skipped := l.line(step.err, step.at)
		assert.Equal(t, step.write, write, step.name)
		assert.Equal(t, step.skipped, skipped, step.name)
	}
	assert.True(t, isStoreFault(errBusy(errors.New("x")).Err))
	assert.False(t, isStoreFault(providerError(errors.New("x")).Err))
	assert.Equal(t, "down", storeFault{errors.New("down")}.Error(), "it prints as its cause")
}
