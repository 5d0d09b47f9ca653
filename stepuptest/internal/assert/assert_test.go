package assert

import (
	"errors"
	"fmt"
	"testing"
)

// recorder is a testing.TB that keeps failures instead of reporting them.
type recorder struct {
	testing.TB
	failures []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.failures = append(r.failures, fmt.Sprintf(format, args...))
}

func TestChecksHoldAndFailAsTestifyDoes(t *testing.T) {
	sentinel := errors.New("sentinel")
	var nilMap map[string]int
	n := 0
	tests := []struct {
		name string
		ok   func(tb testing.TB) bool
		want bool
	}{
		{"Equal ints", func(tb testing.TB) bool { return Equal(tb, 1, 1) }, true},
		{"Equal int vs int64", func(tb testing.TB) bool { return Equal(tb, 1, int64(1)) }, false},
		{"Equal bytes", func(tb testing.TB) bool { return Equal(tb, []byte("a"), []byte("a")) }, true},
		{"Equal nil vs empty bytes", func(tb testing.TB) bool { return Equal(tb, []byte(nil), []byte{}) }, false},
		{"Equal maps", func(tb testing.TB) bool { return Equal(tb, map[string]int{"a": 1}, map[string]int{"a": 1}) }, true},
		{"Equal strings differ", func(tb testing.TB) bool { return Equal(tb, "a", "b") }, false},
		{"NotEqual", func(tb testing.TB) bool { return NotEqual(tb, "a", "a") }, false},
		{"Empty nil map", func(tb testing.TB) bool { return Empty(tb, nilMap) }, true},
		{"Empty zero struct", func(tb testing.TB) bool { return Empty(tb, struct{ A int }{}) }, true},
		{"Empty pointer to zero", func(tb testing.TB) bool { return Empty(tb, &n) }, true},
		{"Empty string", func(tb testing.TB) bool { return Empty(tb, "x") }, false},
		{"NotEmpty slice", func(tb testing.TB) bool { return NotEmpty(tb, []int{}) }, false},
		{"Len", func(tb testing.TB) bool { return Len(tb, []int{1, 2}, 2) }, true},
		{"Len wrong", func(tb testing.TB) bool { return Len(tb, "abc", 2) }, false},
		{"Len of int", func(tb testing.TB) bool { return Len(tb, 3, 0) }, false},
		{"Contains substring", func(tb testing.TB) bool { return Contains(tb, "hello", "ell") }, true},
		{"Contains element", func(tb testing.TB) bool { return Contains(tb, []string{"a", "b"}, "b") }, true},
		{"Contains key", func(tb testing.TB) bool { return Contains(tb, map[string]int{"a": 1}, "b") }, false},
		{"Contains in int", func(tb testing.TB) bool { return Contains(tb, 1, 1) }, false},
		{"NotContains", func(tb testing.TB) bool { return NotContains(tb, "hello", "ell") }, false},
		{"True", func(tb testing.TB) bool { return True(tb, false) }, false},
		{"False", func(tb testing.TB) bool { return False(tb, false) }, true},
		{"NoError", func(tb testing.TB) bool { return NoError(tb, sentinel) }, false},
		{"Error", func(tb testing.TB) bool { return Error(tb, nil) }, false},
		{"ErrorIs wrapped", func(tb testing.TB) bool { return ErrorIs(tb, fmt.Errorf("w: %w", sentinel), sentinel) }, true},
		{"ErrorIs other", func(tb testing.TB) bool { return ErrorIs(tb, errors.New("x"), sentinel) }, false},
		{"NotNil nil pointer", func(tb testing.TB) bool { return NotNil(tb, (*int)(nil)) }, false},
		{"NotNil value", func(tb testing.TB) bool { return NotNil(tb, 0) }, true},
		{"Negative", func(tb testing.TB) bool { return Negative(tb, -1) }, true},
		{"Negative zero", func(tb testing.TB) bool { return Negative(tb, 0) }, false},
		{"Positive", func(tb testing.TB) bool { return Positive(tb, 0.5) }, true},
		{"GreaterOrEqual equal", func(tb testing.TB) bool { return GreaterOrEqual(tb, 2, 2) }, true},
		{"GreaterOrEqual less", func(tb testing.TB) bool { return GreaterOrEqual(tb, 1, 2) }, false},
		{"Less equal", func(tb testing.TB) bool { return Less(tb, 2, 2) }, false},
		{"Fail", func(tb testing.TB) bool { return Fail(tb, "x") }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &recorder{TB: t}
			got := tc.ok(r)
			if got != tc.want {
				t.Fatalf("returned %v, want %v", got, tc.want)
			}
			if got != (len(r.failures) == 0) {
				t.Fatalf("returned %v but reported %q", got, r.failures)
			}
		})
	}
}

func TestMessagesCarryTheCallersContext(t *testing.T) {
	r := &recorder{TB: t}
	Equal(r, 1, 2, "amount %d for %s", 5, "bob")
	if len(r.failures) != 1 {
		t.Fatalf("failures: %q", r.failures)
	}
	for _, want := range []string{"expected: 1", "actual  : 2", "amount 5 for bob"} {
		if !contains1(r.failures[0], want) {
			t.Errorf("failure %q lacks %q", r.failures[0], want)
		}
	}
}

func contains1(s, sub string) bool { found, _ := contains(s, sub); return found }
