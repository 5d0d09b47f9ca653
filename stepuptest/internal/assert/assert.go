// Package assert is the small set of checks the conformance suite makes,
// reported through testing.TB. It mirrors the names and argument order of
// testify's assert so the suite reads like the tests around it, without
// making every user of stepuptest link testify. Each check reports a
// failure with t.Errorf and returns whether it held.
package assert

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// message formats testify-style msgAndArgs: a lone value, or a format
// string and its arguments.
func message(msgAndArgs []any) string {
	switch len(msgAndArgs) {
	case 0:
		return ""
	case 1:
		if s, ok := msgAndArgs[0].(string); ok {
			return s
		}
		return fmt.Sprintf("%+v", msgAndArgs[0])
	default:
		if format, ok := msgAndArgs[0].(string); ok {
			return fmt.Sprintf(format, msgAndArgs[1:]...)
		}
		return fmt.Sprint(msgAndArgs...)
	}
}

func fail(t testing.TB, what string, msgAndArgs []any) bool {
	t.Helper()
	if m := message(msgAndArgs); m != "" {
		t.Errorf("%s\n\tmessage: %s", what, m)
	} else {
		t.Errorf("%s", what)
	}
	return false
}

func show(v any) string {
	switch v := v.(type) {
	case string:
		return fmt.Sprintf("%q", v)
	case []byte:
		return fmt.Sprintf("%q", v)
	case error:
		return fmt.Sprintf("%v (%T)", v, v)
	}
	return fmt.Sprintf("%#v", v)
}

// equal is testify's ObjectsAreEqual: byte slices by content, anything
// else by reflect.DeepEqual.
func equal(expected, actual any) bool {
	if expected == nil || actual == nil {
		return expected == actual
	}
	exp, ok := expected.([]byte)
	if !ok {
		return reflect.DeepEqual(expected, actual)
	}
	act, ok := actual.([]byte)
	if !ok {
		return false
	}
	if exp == nil || act == nil {
		return exp == nil && act == nil
	}
	return bytes.Equal(exp, act)
}

// Equal checks that expected and actual are deeply equal.
func Equal(t testing.TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if equal(expected, actual) {
		return true
	}
	return fail(t, fmt.Sprintf("not equal:\n\texpected: %s\n\tactual  : %s", show(expected), show(actual)), msgAndArgs)
}

// NotEqual checks that expected and actual differ.
func NotEqual(t testing.TB, expected, actual any, msgAndArgs ...any) bool {
	t.Helper()
	if !equal(expected, actual) {
		return true
	}
	return fail(t, fmt.Sprintf("should not be %s", show(actual)), msgAndArgs)
}

// isEmpty is testify's notion: nil, a zero value, an empty container, or
// a pointer to an empty value.
func isEmpty(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Chan, reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		return rv.Len() == 0
	case reflect.Pointer:
		if rv.IsNil() {
			return true
		}
		return isEmpty(rv.Elem().Interface())
	default:
		return rv.IsZero()
	}
}

// Empty checks that v is empty (see isEmpty).
func Empty(t testing.TB, v any, msgAndArgs ...any) bool {
	t.Helper()
	if isEmpty(v) {
		return true
	}
	return fail(t, fmt.Sprintf("should be empty, is %s", show(v)), msgAndArgs)
}

// NotEmpty checks that v is not empty.
func NotEmpty(t testing.TB, v any, msgAndArgs ...any) bool {
	t.Helper()
	if !isEmpty(v) {
		return true
	}
	return fail(t, fmt.Sprintf("should not be empty, is %s", show(v)), msgAndArgs)
}

// Len checks that v (a string, slice, array, map or channel) has n
// elements.
func Len(t testing.TB, v any, n int, msgAndArgs ...any) bool {
	t.Helper()
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Chan, reflect.Map, reflect.Slice, reflect.Array, reflect.String:
		if rv.Len() == n {
			return true
		}
		return fail(t, fmt.Sprintf("should have %d item(s), has %d: %s", n, rv.Len(), show(v)), msgAndArgs)
	}
	return fail(t, fmt.Sprintf("%s has no length", show(v)), msgAndArgs)
}

// contains reports whether s holds elem: a substring of a string, an
// element of a slice or array, a key of a map. ok is false when s is none
// of those.
func contains(s, elem any) (found, ok bool) {
	rv := reflect.ValueOf(s)
	switch rv.Kind() {
	case reflect.String:
		e, isStr := elem.(string)
		if !isStr {
			return false, false
		}
		return strings.Contains(rv.String(), e), true
	case reflect.Slice, reflect.Array:
		for i := 0; i < rv.Len(); i++ {
			if equal(rv.Index(i).Interface(), elem) {
				return true, true
			}
		}
		return false, true
	case reflect.Map:
		for _, k := range rv.MapKeys() {
			if equal(k.Interface(), elem) {
				return true, true
			}
		}
		return false, true
	}
	return false, false
}

// Contains checks that s contains elem (see contains).
func Contains(t testing.TB, s, elem any, msgAndArgs ...any) bool {
	t.Helper()
	found, ok := contains(s, elem)
	if !ok {
		return fail(t, fmt.Sprintf("%s cannot contain %s", show(s), show(elem)), msgAndArgs)
	}
	if found {
		return true
	}
	return fail(t, fmt.Sprintf("%s does not contain %s", show(s), show(elem)), msgAndArgs)
}

// NotContains checks that s does not contain elem.
func NotContains(t testing.TB, s, elem any, msgAndArgs ...any) bool {
	t.Helper()
	found, ok := contains(s, elem)
	if !ok {
		return fail(t, fmt.Sprintf("%s cannot contain %s", show(s), show(elem)), msgAndArgs)
	}
	if !found {
		return true
	}
	return fail(t, fmt.Sprintf("%s should not contain %s", show(s), show(elem)), msgAndArgs)
}

// True checks that v is true.
func True(t testing.TB, v bool, msgAndArgs ...any) bool {
	t.Helper()
	if v {
		return true
	}
	return fail(t, "should be true", msgAndArgs)
}

// False checks that v is false.
func False(t testing.TB, v bool, msgAndArgs ...any) bool {
	t.Helper()
	if !v {
		return true
	}
	return fail(t, "should be false", msgAndArgs)
}

// NoError checks that err is nil.
func NoError(t testing.TB, err error, msgAndArgs ...any) bool {
	t.Helper()
	if err == nil {
		return true
	}
	return fail(t, fmt.Sprintf("unexpected error: %v", err), msgAndArgs)
}

// Error checks that err is not nil.
func Error(t testing.TB, err error, msgAndArgs ...any) bool {
	t.Helper()
	if err != nil {
		return true
	}
	return fail(t, "an error was expected", msgAndArgs)
}

// ErrorIs checks errors.Is(err, target).
func ErrorIs(t testing.TB, err, target error, msgAndArgs ...any) bool {
	t.Helper()
	if errors.Is(err, target) {
		return true
	}
	return fail(t, fmt.Sprintf("error %v is not %v", err, target), msgAndArgs)
}

// NotNil checks that v is not nil (nor a nil pointer, map, slice, func,
// channel or interface).
func NotNil(t testing.TB, v any, msgAndArgs ...any) bool {
	t.Helper()
	if v != nil {
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice, reflect.UnsafePointer:
			if !rv.IsNil() {
				return true
			}
		default:
			return true
		}
	}
	return fail(t, "should not be nil", msgAndArgs)
}

// Fail reports a failure.
func Fail(t testing.TB, failure string, msgAndArgs ...any) bool {
	t.Helper()
	return fail(t, failure, msgAndArgs)
}

// Failf reports a failure with a formatted message.
func Failf(t testing.TB, failure, format string, args ...any) bool {
	t.Helper()
	return fail(t, failure, append([]any{format}, args...))
}

// Number is what the ordered checks compare.
type Number interface {
	~int | ~int8 | ~int16 | ~int32 | ~int64 |
		~uint | ~uint8 | ~uint16 | ~uint32 | ~uint64 | ~float32 | ~float64
}

// Negative checks that n < 0.
func Negative[N Number](t testing.TB, n N, msgAndArgs ...any) bool {
	t.Helper()
	if n < 0 {
		return true
	}
	return fail(t, fmt.Sprintf("%v is not negative", n), msgAndArgs)
}

// Positive checks that n > 0.
func Positive[N Number](t testing.TB, n N, msgAndArgs ...any) bool {
	t.Helper()
	if n > 0 {
		return true
	}
	return fail(t, fmt.Sprintf("%v is not positive", n), msgAndArgs)
}

// GreaterOrEqual checks that a >= b.
func GreaterOrEqual[N Number](t testing.TB, a, b N, msgAndArgs ...any) bool {
	t.Helper()
	if a >= b {
		return true
	}
	return fail(t, fmt.Sprintf("%v is not >= %v", a, b), msgAndArgs)
}

// Less checks that a < b.
func Less[N Number](t testing.TB, a, b N, msgAndArgs ...any) bool {
	t.Helper()
	if a < b {
		return true
	}
	return fail(t, fmt.Sprintf("%v is not < %v", a, b), msgAndArgs)
}
