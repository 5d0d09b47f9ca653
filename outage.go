package stepup

import (
	"errors"
	"sync/atomic"
	"time"
)

// A Store or Counter that cannot answer (a shared store whose server went
// away, or is too slow for its timeout) stops only what needs it. The
// guard still asks the provider about a protected request and runs what it
// allows; it answers 503 with Retry-After only where it must write: a new
// challenge (to count, park and later spend it), a callback, a token retry,
// a pass or a grant. Without the store no pass or Remember grant can be
// read either, so a request that would have used one is judged afresh
// (SECURITY.md, threats 35 and 36).

// storeFault marks the cause of a decision as a Store or Counter that
// could not answer (or, for a Store, could not take more). It prints as
// its cause; errors.Is and errors.As see through it.
type storeFault struct{ error }

func (f storeFault) Unwrap() error { return f.error }

// isStoreFault reports whether err was caused by a Store or Counter that
// could not answer.
func isStoreFault(err error) bool {
	var f storeFault
	return errors.As(err, &f)
}

// faultLogEvery is how often the log names a Store or Counter that cannot
// answer: one line per interval, whatever the number of requests it
// affects, with the number of lines left out since the one before.
// Config.OnEvent still sees every event.
const faultLogEvery = 10 * time.Second

// faultLog rate-limits the log lines of store faults (see faultLogEvery).
type faultLog struct {
	last    atomic.Int64 // when the last line was written, Unix nanoseconds; 0: never
	skipped atomic.Int64 // lines left out since
}

// line reports whether the log line of an event caused by err is written
// at now, and how many such lines were left out before it. Lines of other
// causes are always written.
func (l *faultLog) line(err error, now time.Time) (bool, int64) {
	if !isStoreFault(err) {
		return true, 0
	}
	t := now.UnixNano()
	last := l.last.Load()
	if d := t - last; last != 0 && d >= 0 && d < int64(faultLogEvery) || !l.last.CompareAndSwap(last, t) {
		l.skipped.Add(1)
		return false, 0
	}
	return true, l.skipped.Swap(0)
}
