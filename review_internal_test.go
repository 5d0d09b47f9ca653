package stepup

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The poll limiter remembers at most maxPolls parks: when full, it forgets
// those whose interval has passed; when none has, a new park is not asked
// about (it waits), and a park it remembers keeps its own allowance.
func TestPollLimiterIsBounded(t *testing.T) {
	var p pollLimiter
	now := time.Unix(1_700_000_000, 0)
	every := 5 * time.Second
	for i := range maxPolls - 1 {
		require.True(t, p.allow(strconv.Itoa(i), now, every))
	}
	assert.True(t, p.allow("last room", now, every), "room for exactly maxPolls parks")
	assert.Len(t, p.last, maxPolls)
	assert.False(t, p.allow("one too many", now, every), "full of parks polled within their interval: wait")
	assert.False(t, p.allow("0", now.Add(every-time.Nanosecond), every), "a known park keeps its own interval")
	assert.True(t, p.allow("0", now.Add(every), every), "a known park is asked again once its interval passed")
	assert.Len(t, p.last, maxPolls)

	later := now.Add(every)
	assert.True(t, p.allow("new", later, every), "the parks whose interval passed are forgotten to make room")
	assert.Len(t, p.last, 2, "only the two polled at %v are kept", later)
}
