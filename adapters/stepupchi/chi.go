package stepupchi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/go-chi/chi/v5"

	"github.com/stepupkit/stepup"
	"github.com/stepupkit/stepup/internal/handlerid"
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
	return (&middleware{g: g, covered: covered}).wrap
}

// middleware is what Middleware returns; CheckRoutes finds it among a
// route's middlewares by the code of its wrap method.
type middleware struct {
	g       *stepup.Guard
	covered map[string]bool
}

func (m *middleware) wrap(next http.Handler) http.Handler {
	return &table{g: m.g, covered: m.covered, next: next, core: m.g.Middleware(restorePattern(next))}
}

var middlewareCode = handlerid.Code((*middleware)(nil).wrap)

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
//
// Require also protects a handler wherever it is mounted when it wraps the
// handler itself: h := stepupchi.Require(guard, "transfer")(transfer),
// then r.Post("/transfer", h.ServeHTTP) under as many routes as needed.
func Require(g *stepup.Guard, action string, opts ...stepup.RequireOption) func(http.Handler) http.Handler {
	return (&requirer{require: g.Require(action, opts...)}).wrap
}

// requirer is Require's middleware; CheckRoutes recognises it among a
// route's middlewares by the code of its wrap method.
type requirer struct {
	require func(http.Handler) http.Handler
}

func (q *requirer) wrap(next http.Handler) http.Handler { return &required{q.require(next)} }

// required is a handler Require protects; CheckRoutes counts it protected
// under every route.
type required struct{ h http.Handler }

func (q *required) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rctx := chi.RouteContext(r.Context()); rctx != nil {
		r = routed(rctx, r, dispatched(rctx, r))
	}
	q.h.ServeHTTP(w, r)
}

// isRequired reports whether h is a handler Require wrapped, as a value
// or as its ServeHTTP method.
func isRequired(h http.Handler) bool {
	if f, ok := h.(http.HandlerFunc); ok {
		if inner := handlerid.ServeHTTPOf(f); inner != nil {
			h = inner
		}
		if handlerid.Code(f) == requiredValue {
			return true
		}
	}
	_, ok := h.(*required)
	return ok
}

var requiredValue = handlerid.Code((*required)(nil).ServeHTTP)

var requireCode = handlerid.Code((*requirer)(nil).wrap)

// Callback serves the guard's callback route and replays parked requests
// through root, the whole chi router again (its middleware included):
//
//	r.Get("/stepup/callback", stepupchi.Callback(guard, r).ServeHTTP)
//
// The replay starts from a fresh chi routing context: chi keeps the one it
// finds in a request's context, and the callback's own (GET
// /stepup/callback) would route the replay as a GET.
func Callback(g *stepup.Guard, root http.Handler) http.Handler {
	return &callback{g: g, h: g.Callback(root)}
}

// callback is the handler Callback returns; CheckRoutes recognises it at
// the path of Config.CallbackURL.
type callback struct {
	g *stepup.Guard
	h http.Handler
}

func (cb *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	cb.h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), chi.RouteCtxKey, (*chi.Context)(nil))))
}

// callbackValue is the code of cb.ServeHTTP taken as a function value.
var callbackValue = handlerid.Code((*callback)(nil).ServeHTTP)

// notCallback says why h, the handler at the callback's route, is not
// Callback's for g, or returns "" when it is.
func notCallback(g *stepup.Guard, h http.Handler) string {
	if f, ok := h.(http.HandlerFunc); ok {
		if handlerid.Code(f) == callbackValue {
			return "" // a method value hides its guard
		}
		if inner := handlerid.ServeHTTPOf(f); inner != nil {
			h = inner
		}
	}
	if cb, ok := h.(*callback); ok {
		if cb.g == g {
			return ""
		}
		return "the callback of another guard"
	}
	return handlerid.Name(h) + ", not stepupchi.Callback(guard, r)"
}

// PreserveBody keeps the exact body of every request for the guard, so
// middleware that reads bodies (a CSRF check reading a form field) may run
// first. Register it first, with r.Use on the root router.
func PreserveBody(g *stepup.Guard) func(http.Handler) http.Handler {
	return g.PreserveBody
}

// CheckRoutes reports the wiring mistakes it can see in r's routes (walked
// with chi.Walk, mounted sub-routers included), so that none leaves a
// route open or a parked request lost. Call it after registering the
// routes.
//
//   - A policy that names no route of r. chi's RoutePattern drops a
//     trailing slash, so "/admin/" is never matched: name it "/admin". A
//     sub-router mounted behind a wrapper (r.Mount("/api", logging(sub)))
//     hides its routes from chi, and from the guard: its policies are
//     reported here.
//   - A route that a policy protects but that has neither Middleware nor
//     Require among its middlewares: registered outside the r.Group or
//     r.With that holds the guard.
//   - A handler that a policy protects for some methods but that is also
//     registered for methods no policy covers, as r.Handle and
//     r.HandleFunc do (every method): a GET-only policy on
//     r.Handle("/admin", h) lets POST /admin run h without a step-up. Use
//     Method "*" in the policy.
//   - A handler protected under one route (by a policy, or by Require
//     among the route's middlewares) and registered under another where
//     nothing protects it: a sub-router mounted at "/api" and at
//     "/api/v1", a handler in two groups. The alias runs it without a
//     step-up. Register it under the protected route only or, to serve it
//     under several, wrap the handler itself with Require.
//   - The path of Config.CallbackURL not routed (GET) to Callback: the
//     user would pass the challenge, land on a 404, and the parked request
//     would be lost.
//
// "The same handler" is the same registered value: one http.Handler value
// (a pointer, a sub-router's route mounted twice), one function, or one
// method value of one receiver (app.transfer), whether registered for
// several methods or under several routes. A closure made anew for each
// registration, or by one factory per route (logging(h)), is a handler of
// its own and is not reported. Handlers shared only by routes no policy
// protects (a 404, a file server) are fine.
func CheckRoutes(g *stepup.Guard, r chi.Routes) error {
	type handlerAt struct {
		pattern string
		id      handlerid.ID
	}
	have := map[[2]string]bool{}
	handlers := map[[2]string]http.Handler{}
	methods := map[handlerAt][]string{}
	byRequire := map[[2]string]bool{} // Require among the route's middlewares, or around its handler
	var order []handlerAt
	var unguarded []error
	err := chi.Walk(r, func(method, route string, h http.Handler, mws ...func(http.Handler) http.Handler) error {
		p := pattern(route)
		have[[2]string{method, p}] = true
		have[[2]string{"*", p}] = true
		handlers[[2]string{method, p}] = h
		guarded := false
		for _, mw := range mws {
			switch handlerid.Code(mw) {
			case requireCode:
				byRequire[[2]string{method, p}] = true
			case middlewareCode:
				guarded = true
			}
		}
		if isRequired(h) {
			byRequire[[2]string{method, p}] = true
		}
		if _, ok := g.Match(method, p); ok && !guarded && !byRequire[[2]string{method, p}] {
			unguarded = append(unguarded, fmt.Errorf("stepupchi: route %s %s: a policy protects it, but neither stepupchi.Middleware "+
				"nor stepupchi.Require is among its middlewares (registered outside the r.Group or r.With that holds the guard?), "+
				"so chi runs it without a step-up", method, p))
		}
		k := handlerAt{p, handlerid.Of(h)}
		if _, seen := methods[k]; !seen {
			order = append(order, k)
		}
		methods[k] = append(methods[k], method)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(unguarded, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	errs := unguarded
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
	type uses struct {
		handler         http.Handler
		protected, open []string
	}
	byHandler := map[handlerid.ID]*uses{}
	var handlerOrder []handlerid.ID
	for _, k := range order {
		protected, open := g.SplitMethods(k.pattern, methods[k])
		if len(protected) > 0 && len(open) > 0 {
			errs = append(errs, fmt.Errorf("stepupchi: route %s: one handler is protected for %s but registered for %s too, "+
				"which no policy covers (r.Handle or r.HandleFunc?): use Method \"*\" in the policy or add policies for those methods",
				k.pattern, strings.Join(protected, ", "), strings.Join(open, ", ")))
		}
		u := byHandler[k.id]
		if u == nil {
			u = &uses{handler: handlers[[2]string{methods[k][0], k.pattern}]}
			byHandler[k.id] = u
			handlerOrder = append(handlerOrder, k.id)
		}
		for _, m := range methods[k] {
			if byRequire[[2]string{m, k.pattern}] {
				protected = append(protected, m)
				open = slices.DeleteFunc(open, func(o string) bool { return o == m })
			}
		}
		for _, m := range protected {
			u.protected = append(u.protected, m+" "+k.pattern)
		}
		if len(protected) == 0 { // both at one route: reported above
			for _, m := range open {
				u.open = append(u.open, m+" "+k.pattern)
			}
		}
	}
	for _, id := range handlerOrder {
		if u := byHandler[id]; len(u.protected) > 0 && len(u.open) > 0 {
			errs = append(errs, handlerid.AliasError("stepupchi", handlerid.Name(u.handler), u.protected, u.open,
				"protect the handler itself with stepupchi.Require(guard, action)(handler), which protects it wherever it is mounted"))
		}
	}
	if err := checkCallback(g, r, handlers); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// checkCallback reports when r does not route a GET of the path of
// Config.CallbackURL to Callback. handlers holds r's endpoints by method
// and pattern, as CheckRoutes walked them.
func checkCallback(g *stepup.Guard, r chi.Routes, handlers map[[2]string]http.Handler) error {
	u := g.CallbackURL()
	found := r.Find(chi.NewRouteContext(), http.MethodGet, u.EscapedPath())
	if found == "" {
		return fmt.Errorf("stepupchi: Config.CallbackURL %s: its path names no GET route: mount the callback there, "+
			"r.Get(%q, stepupchi.Callback(guard, r).ServeHTTP), or the user passes the challenge and the parked request is lost",
			u, u.EscapedPath())
	}
	h := handlers[[2]string{http.MethodGet, pattern(found)}]
	if h == nil {
		return fmt.Errorf("stepupchi: Config.CallbackURL %s: chi routes it to %s, which chi.Walk does not list: "+
			"mount stepupchi.Callback(guard, r) there", u, found)
	}
	if why := notCallback(g, h); why != "" {
		return fmt.Errorf("stepupchi: Config.CallbackURL %s: chi routes it to %s, which serves %s", u, found, why)
	}
	return nil
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
