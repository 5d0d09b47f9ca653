package handlerid_test

import (
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/stepupkit/stepup/internal/handlerid"
)

type app struct{ name string }

func (a *app) transfer(http.ResponseWriter, *http.Request) {}

type handler struct{ n int }

func (*handler) ServeHTTP(http.ResponseWriter, *http.Request) {}

func topLevel(http.ResponseWriter, *http.Request) {}

func logging(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { next.ServeHTTP(w, r) })
}

func TestOf(t *testing.T) {
	a, b := &app{"a"}, &app{"b"}
	h1, h2 := &handler{1}, &handler{2}
	shared := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	id := func(h http.Handler) handlerid.ID { return handlerid.Of(h) }
	tests := []struct {
		name       string
		given, and http.Handler
		same       bool
	}{
		{"one pointer handler twice", h1, h1, true},
		{"two pointer handlers", h1, h2, false},
		{"a top-level function converted twice", http.HandlerFunc(topLevel), http.HandlerFunc(topLevel), true},
		{"one closure value twice", shared, shared, true},
		{"a method value evaluated twice", http.HandlerFunc(a.transfer), http.HandlerFunc(a.transfer), true},
		{"one method on two receivers", http.HandlerFunc(a.transfer), http.HandlerFunc(b.transfer), false},
		{"a pointer's ServeHTTP method value twice", http.HandlerFunc(h1.ServeHTTP), http.HandlerFunc(h1.ServeHTTP), true},
		{"one wrapper around two handlers", logging(h1), logging(h2), false},
		{"one wrapper around one handler, twice (a closure per call)", logging(h1), logging(h1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.same, id(tc.given) == id(tc.and))
			assert.NotZero(t, id(tc.given))
		})
	}
	assert.Zero(t, handlerid.Of(nil))
}

func TestCode(t *testing.T) {
	a, b := &app{"a"}, &app{"b"}
	assert.Equal(t, handlerid.Code(a.transfer), handlerid.Code(b.transfer), "a method's wrapper, whatever the receiver")
	assert.NotEqual(t, handlerid.Code(a.transfer), handlerid.Code(topLevel))
	assert.Zero(t, handlerid.Code(&handler{}))
}

func TestServeHTTPOf(t *testing.T) {
	var h http.Handler = &handler{1}
	assert.Same(t, h, handlerid.ServeHTTPOf(h.ServeHTTP))
	assert.Equal(t, handlerid.Of(h), handlerid.Of(http.HandlerFunc(h.ServeHTTP)), "the handler whose method it is")
	assert.Nil(t, handlerid.ServeHTTPOf(topLevel))
	assert.Nil(t, handlerid.ServeHTTPOf(nil))
}

func TestName(t *testing.T) {
	var h http.Handler = &handler{1}
	for _, tc := range []struct {
		given  any
		expect string
	}{
		{topLevel, "github.com/stepupkit/stepup/internal/handlerid_test.topLevel"},
		{(&app{}).transfer, "github.com/stepupkit/stepup/internal/handlerid_test.(*app).transfer-fm"},
		{h, "*handlerid_test.handler"},
		{http.HandlerFunc(h.ServeHTTP), "*handlerid_test.handler"},
	} {
		assert.Equal(t, tc.expect, handlerid.Name(tc.given))
	}
}

func TestAliasError(t *testing.T) {
	protected, open := []string{"POST /b", "POST /a"}, []string{"POST /v1/b"}
	err := handlerid.AliasError("stepupx", "main.transfer", protected, open, "use Require")
	assert.EqualError(t, err, "stepupx: handler main.transfer is protected at POST /a, POST /b but also registered at POST /v1/b, "+
		"where it runs without a step-up: register it only under the protected route or, to serve it under several routes, use Require")
	assert.Equal(t, []string{"POST /b", "POST /a"}, protected, "the caller's slices are left as they were")
}
