// Package handlerid tells whether two registered handlers are the same,
// for the route checks that report one handler protected under one route
// and open under another.
//
// Identity is what the registration holds, not what the handler does:
//
//   - a value that is not a function (a pointer to a handler struct, an
//     http.Handler a constructor returned) is identified by its dynamic
//     type and data word, so the same value registered twice is the same
//     handler and two values built by two calls are not;
//   - a function value is identified by its type and its closure: a
//     top-level function converted any number of times is one handler,
//     while each closure a factory returns (logging(h), a middleware that
//     wraps per route) is a handler of its own, so wrappers shared by many
//     routes do not make their handlers look alike. A closure created
//     again at each registration (an inline func literal inside a loop or
//     a helper) is therefore not recognised as the same handler;
//   - a method value on a pointer receiver (app.transfer, h.ServeHTTP) is
//     identified by the method and the receiver: Go makes a new closure
//     each time a method value is evaluated, yet app.transfer registered
//     twice is one handler.
package handlerid

import (
	"fmt"
	"net/http"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"unsafe"
)

// ID identifies a handler; the zero ID is no handler.
type ID struct{ a, b uintptr }

// Of returns the identity of h, a handler value (an http.Handler, a
// framework's handler function).
func Of(h any) ID {
	if h == nil {
		return ID{}
	}
	iface := *(*[2]unsafe.Pointer)(unsafe.Pointer(&h))
	words := [2]uintptr{uintptr(iface[0]), uintptr(iface[1])}
	v := reflect.ValueOf(h)
	if v.Kind() != reflect.Func || v.IsNil() {
		return ID{words[0], words[1]}
	}
	code := v.Pointer()
	if f, ok := h.(http.HandlerFunc); ok && code == serveHTTPValue {
		return Of(ServeHTTPOf(f)) // h.ServeHTTP of an http.Handler h: h
	}
	if fn := runtime.FuncForPC(code); fn != nil && pointerMethodValue(fn.Name()) {
		// A method value's closure is {code, receiver}: the receiver of a
		// pointer method is one pointer word.
		recv := *(*uintptr)(unsafe.Add(iface[1], unsafe.Sizeof(uintptr(0))))
		return ID{code, recv}
	}
	return ID{words[0], words[1]}
}

// pointerMethodValue reports whether name is the wrapper Go generates for
// a method value of a pointer method, "pkg.(*T).M-fm".
func pointerMethodValue(name string) bool {
	return strings.HasSuffix(name, "-fm") && strings.Contains(name, ".(*")
}

// Code returns the code of a function value h (for a method value, the
// wrapper Go generates for that method, the same for every receiver), or
// 0 when h is not a function.
func Code(h any) uintptr {
	v := reflect.ValueOf(h)
	if v.Kind() != reflect.Func || v.IsNil() {
		return 0
	}
	return v.Pointer()
}

// Name describes h for an error message: a function's name, else its type.
func Name(h any) string {
	if f, ok := h.(http.HandlerFunc); ok && Code(f) == serveHTTPValue {
		h = ServeHTTPOf(f)
	}
	if code := Code(h); code != 0 {
		if fn := runtime.FuncForPC(code); fn != nil {
			return fn.Name()
		}
	}
	return reflect.TypeOf(h).String()
}

// AliasError reports one handler protected under some routes and
// registered under others where nothing protects it; advice says how to
// protect it under every route, in the framework's terms.
func AliasError(prefix, handler string, protected, open []string, advice string) error {
	protected, open = slices.Clone(protected), slices.Clone(open)
	slices.Sort(protected)
	slices.Sort(open)
	return fmt.Errorf("%s: handler %s is protected at %s but also registered at %s, where it runs without a step-up: "+
		"register it only under the protected route or, to serve it under several routes, %s",
		prefix, handler, strings.Join(protected, ", "), strings.Join(open, ", "), advice)
}

// serveHTTPValue is the code of h.ServeHTTP taken as a function value
// where h is an http.Handler interface (mux.HandleFunc(p, h.ServeHTTP)):
// its closure holds the interface.
var serveHTTPValue = Code(http.Handler(http.NotFoundHandler()).ServeHTTP)

// ServeHTTPOf returns h when f is h.ServeHTTP taken as a function value of
// the http.Handler interface, or nil.
func ServeHTTPOf(f http.HandlerFunc) http.Handler {
	if f == nil || Code(f) != serveHTTPValue {
		return nil
	}
	closure := *(*unsafe.Pointer)(unsafe.Pointer(&f))
	return *(*http.Handler)(unsafe.Add(closure, unsafe.Sizeof(uintptr(0))))
}
