package stepupchi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/go-chi/chi/v5"

	"github.com/stepupkit/stepup"
)

// Middleware protects the routes of the guard's policy table, matched on
// chi's route pattern, chi.RouteContext(ctx).RoutePattern(), and on the
// method chi dispatched on. Register it where chi has routed the request:
// inline, with r.With or inside r.Group:
//
//	r.Group(func(r chi.Router) {
//		r.Use(stepupchi.Middleware(guard))
//		r.Post("/transfer", transfer)
//	})
//
// chi runs the middleware of r.Use on a router before that router routes,
// so there the pattern is not known yet (empty on the root router, the
// mount point on a mounted sub-router). While the table is not empty the
// middleware refuses such a request with a 500 wrapping
// stepup.ErrMisconfigured, and logs how to fix the wiring, when chi routes
// it somewhere; a request no route matches stays chi's 404 or 405.
//
// The method judged is the one chi dispatched on (Context.RouteMethod), not
// r.Method: a method override before routing decides the route and the
// policy alike, and one after routing changes neither. When they differ
// the protected handler, the parked request and its replay get the
// dispatched method. The path parameters chi matched are set on the request
// (r.PathValue) for FromPath attributes.
//
// Refusals are written by the guard (Config.ErrorHandler, else its JSON or
// HTML answer). The 500 for a misplaced middleware is reported through
// Config.OnEvent and the log like every refusal, and written with
// stepup.WriteError.
func Middleware(g *stepup.Guard) func(http.Handler) http.Handler {
	covered := map[string]bool{}
	for _, p := range g.Policies() {
		covered[p.Route] = true
	}
	return func(next http.Handler) http.Handler {
		return &table{g: g, covered: covered, next: next, core: g.Middleware(restorePattern(next))}
	}
}

// table is the policy-table middleware around one chi endpoint.
type table struct {
	g *stepup.Guard
	// covered holds the patterns some policy protects, for some method: a
	// request at any other pattern passes after one map lookup.
	covered map[string]bool
	next    http.Handler
	// core is the guard's net/http middleware, which decides by the
	// request's Pattern ("METHOD /route") when it wraps no ServeMux.
	core http.Handler
}

func (t *table) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if len(t.covered) == 0 {
		t.next.ServeHTTP(w, r)
		return
	}
	rctx := chi.RouteContext(r.Context())
	if rctx == nil {
		t.misconfigured(w, r, "stepupchi.Middleware runs outside a chi router (no chi.RouteContext): "+
			"register it on a chi router, inline with r.With or r.Group")
		return
	}
	if reason := unrouted(rctx, r); reason != "" {
		t.misconfigured(w, r, reason)
		return
	}
	pattern := rctx.RoutePattern()
	if !t.covered[pattern] {
		t.next.ServeHTTP(w, r)
		return
	}
	method := dispatched(rctx, r)
	if _, ok := t.g.Match(method, pattern); !ok {
		t.next.ServeHTTP(w, r)
		return
	}
	r2 := routed(rctx, r, method)
	r2.Pattern = method + " " + pattern
	t.core.ServeHTTP(w, r2)
}

func (t *table) misconfigured(w http.ResponseWriter, r *http.Request, reason string) {
	t.g.WriteError(w, r, t.g.Misconfigured(r, reason))
}

// restorePattern gives the handler chi's pattern back: the guard's core
// was handed "METHOD /route".
func restorePattern(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, p, ok := strings.Cut(r.Pattern, " "); ok {
			r.Pattern = p
		}
		next.ServeHTTP(w, r)
	})
}

// dispatched is the method chi routed the request by, as the guard looks
// it up: a HEAD that chi served with a GET route (middleware.GetHead) stays
// HEAD, which GET policies cover.
func dispatched(rctx *chi.Context, r *http.Request) string {
	m := rctx.RouteMethod
	if m == "" || (r.Method == http.MethodHead && m == http.MethodGet) {
		return r.Method
	}
	return m
}

// routed returns a copy of r with the dispatched method and chi's path
// parameters, the last of a name winning as in chi.URLParam.
func routed(rctx *chi.Context, r *http.Request, method string) *http.Request {
	r2 := r.WithContext(r.Context())
	r2.Method = method
	for i, k := range rctx.URLParams.Keys {
		if i < len(rctx.URLParams.Values) && k != "" {
			r2.SetPathValue(k, rctx.URLParams.Values[i])
		}
	}
	return r2
}

// unrouted says why chi has not finished routing r where the middleware
// runs, when it has not and chi would route the request to some handler;
// "" otherwise. Routing is finished when chi matched a pattern whose route
// is an endpoint, not a mounted sub-router. Only requests with no pattern
// yet, or whose pattern ends in a wildcard (mount points and catch-alls),
// are looked at further.
func unrouted(rctx *chi.Context, r *http.Request) string {
	pats := rctx.RoutePatterns
	if len(pats) > 0 && !strings.HasSuffix(pats[len(pats)-1], "*") {
		return ""
	}
	if len(pats) > 0 && !mountPoints.at(rctx.Routes, pats) {
		return ""
	}
	if rctx.Routes == nil {
		return "stepupchi.Middleware runs before chi routed the request, and the router is unknown: register it inline, with r.With or in r.Group"
	}
	probe := chi.NewRouteContext()
	path := r.URL.RawPath
	if path == "" {
		path = r.URL.Path
	}
	method := rctx.RouteMethod
	if method == "" {
		method = r.Method
	}
	target := rctx.Routes.Find(probe, method, path)
	if target == "" {
		return "" // chi's 404 or 405: no route handler runs
	}
	where := "with r.Use on the root router"
	if len(pats) > 0 {
		where = "at the mount point " + rctx.RoutePattern() + " (with r.Use on the mounted router, or inline around the Mount or Route)"
	}
	return fmt.Sprintf("stepupchi.Middleware ran before chi routed %s %s (to %s): it is registered %s, "+
		"where chi has not matched the route yet; register it inline, with r.With(stepupchi.Middleware(guard)) "+
		"or r.Use inside r.Group(func(r chi.Router) { ... }), on the router that holds the routes it protects",
		method, r.URL.Path, target, where)
}

// mountPoints caches mountPoint by router and pattern chain. A chain is a
// path through the route table, which only grows, and whose routes never
// turn from endpoint to mount point or back (chi panics on a Mount over an
// existing route), so an answer never goes stale; there are no more keys
// than routes.
var mountPoints mountCache

type mountCache struct{ m sync.Map }

type mountKey struct {
	root  chi.Routes
	chain string
}

func (c *mountCache) at(root chi.Routes, pats []string) bool {
	k := mountKey{root, pats[0]}
	if len(pats) > 1 {
		k.chain = strings.Join(pats, "\x00")
	}
	if v, ok := c.m.Load(k); ok {
		return v.(bool)
	}
	mp := mountPoint(root, pats)
	c.m.Store(k, mp)
	return mp
}

// mountPoint reports whether the chain of patterns chi matched so far ends
// at a mounted sub-router, which routes again below it. A pattern chain it
// cannot follow counts as a mount point: the caller then routes the
// request afresh.
func mountPoint(root chi.Routes, pats []string) bool {
	level := root
	for i, p := range pats {
		if level == nil {
			return true
		}
		var found *chi.Route
		for _, rt := range level.Routes() {
			if rt.Pattern == p {
				found = &rt
				break
			}
		}
		if found == nil {
			return true
		}
		if i == len(pats)-1 {
			return found.SubRoutes != nil
		}
		level = found.SubRoutes
	}
	return true
}

// Require protects one route with action, whatever the table says. Use it
// inline, r.With(stepupchi.Require(guard, "transfer")).Post(...): there
// chi has routed, and its path parameters feed FromPath attributes. It
// panics on an invalid action code, as route registration does.
func Require(g *stepup.Guard, action string, opts ...stepup.RequireOption) func(http.Handler) http.Handler {
	require := g.Require(action, opts...)
	return func(next http.Handler) http.Handler {
		h := require(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rctx := chi.RouteContext(r.Context()); rctx != nil {
				r = routed(rctx, r, dispatched(rctx, r))
			}
			h.ServeHTTP(w, r)
		})
	}
}

// Callback serves the guard's callback route and replays parked requests
// through root, the whole chi router again (its middleware included):
//
//	r.Get("/stepup/callback", stepupchi.Callback(guard, r).ServeHTTP)
//
// The replay starts from a fresh chi routing context: chi keeps the one it
// finds in a request's context, and the callback's own (GET
// /stepup/callback) would route the replay as a GET.
func Callback(g *stepup.Guard, root http.Handler) http.Handler {
	h := g.Callback(root)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil))))
	})
}

// PreserveBody keeps the exact body of every request for the guard, so
// middleware that reads bodies (a CSRF check reading a form field) may run
// first. Register it first, with r.Use on the root router.
func PreserveBody(g *stepup.Guard) func(http.Handler) http.Handler {
	return g.PreserveBody
}

// CheckRoutes reports the wiring mistakes it can see in r's routes (walked
// with chi.Walk, mounted sub-routers included), so that none leaves a
// route open. Call it after registering the routes.
//
//   - A policy that names no route of r. chi's RoutePattern drops a
//     trailing slash, so "/admin/" is never matched: name it "/admin". A
//     sub-router mounted behind a wrapper (r.Mount("/api", logging(sub)))
//     hides its routes from chi, and from the guard: its policies are
//     reported here.
//   - A handler that a policy protects for some methods but that is also
//     registered for methods no policy covers, as r.Handle and
//     r.HandleFunc do (every method): a GET-only policy on
//     r.Handle("/admin", h) lets POST /admin run h without a step-up. Use
//     Method "*" in the policy. "The same handler" is the same registered
//     value: one r.Handle, or one function registered for several methods.
func CheckRoutes(g *stepup.Guard, r chi.Routes) error {
	type handlerAt struct {
		pattern string
		id      [2]uintptr
	}
	have := map[[2]string]bool{}
	methods := map[handlerAt][]string{}
	var order []handlerAt
	err := chi.Walk(r, func(method, route string, h http.Handler, _ ...func(http.Handler) http.Handler) error {
		p := pattern(route)
		have[[2]string{method, p}] = true
		have[[2]string{"*", p}] = true
		k := handlerAt{p, identity(h)}
		if _, seen := methods[k]; !seen {
			order = append(order, k)
		}
		methods[k] = append(methods[k], method)
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range g.Policies() {
		if have[[2]string{p.Method, p.Route}] {
			continue
		}
		hint := ""
		if len(p.Route) > 1 && strings.HasSuffix(p.Route, "/") {
			hint = fmt.Sprintf(" (chi's RoutePattern has no trailing slash: name it %q)", strings.TrimRight(p.Route, "/"))
		}
		errs = append(errs, fmt.Errorf("stepupchi: policy %s %s: no such chi route%s", p.Method, p.Route, hint))
	}
	slices.SortFunc(order, func(a, b handlerAt) int { return strings.Compare(a.pattern, b.pattern) })
	for _, k := range order {
		protected, open := g.SplitMethods(k.pattern, methods[k])
		if len(protected) > 0 && len(open) > 0 {
			errs = append(errs, fmt.Errorf("stepupchi: route %s: one handler is protected for %s but registered for %s too, "+
				"which no policy covers (r.Handle or r.HandleFunc?): use Method \"*\" in the policy or add policies for those methods",
				k.pattern, strings.Join(protected, ", "), strings.Join(open, ", ")))
		}
	}
	return errors.Join(errs...)
}

// pattern turns a route as chi.Walk reports it into the pattern
// chi.Context.RoutePattern returns for it at request time.
func pattern(route string) string {
	for strings.Contains(route, "/*/") {
		route = strings.ReplaceAll(route, "/*/", "/")
	}
	if route != "/" {
		route = strings.TrimSuffix(route, "//")
		route = strings.TrimSuffix(route, "/")
	}
	return route
}

// identity is the two words of an interface value: its type and its data
// pointer (for a function, its closure). One registration stored under
// several methods has the same identity under each; two closures made by
// one factory do not.
func identity(h http.Handler) [2]uintptr {
	return *(*[2]uintptr)(unsafe.Pointer(&h))
}
